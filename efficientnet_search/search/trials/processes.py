"""Local worker processes of any search: spawned, replaced when they exit, each given its GPUs.

A search passes its own process entry point; nothing here knows which search it serves.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator

from absl import logging


def run_processes(target: Callable[..., None], args: tuple, *, workers: int,
                  threads: int | None, finished: Callable[[], bool], restart: int,
                  name: str, pass_start_time: bool = False, planned_exit: int | None = None,
                  note: str = "") -> None:
    """Keeps `workers` processes running `target(*args)` until `finished()`; a process that
    exits is replaced while work remains when `restart` (a fresh process every `restart`
    trials; 0: never) or when it exited non-zero (a crash: its trial is retried; or
    `planned_exit`, a process that asked for a fresh one, logged as no error).
    `pass_start_time` appends the wall-clock start time to each process's arguments, so its
    first trial can record what starting the process cost."""
    context = multiprocessing.get_context("spawn")
    slots: list = [None] * workers
    logging.info("%d local worker processes, %s threads each%s%s", workers, threads or "all",
                 f", a fresh process every {restart} trial(s)" if restart else "",
                 note)  # fmt: skip
    devices = gpu_assignments(workers, _local_gpu_ids())
    if devices[0] is not None:
        logging.info("local workers' GPUs: %s", "; ".join(
            f"worker {i}: {ids}" for i, ids in enumerate(devices)))  # fmt: skip
    while True:
        for index, process in enumerate(slots):
            if process is not None and process.exitcode is None:
                continue
            recycled = process is not None and process.exitcode == planned_exit
            if process is not None and process.exitcode and not recycled:
                logging.warning("%s exited with code %s", process.name, process.exitcode)
            slots[index] = None
            if not finished() and (process is None or restart or process.exitcode):
                started = (*args, time.time()) if pass_start_time else args
                slots[index] = context.Process(target=target, args=started,
                                               name=f"{name}-{index}")  # fmt: skip
                # A spawned child copies os.environ as it is at start().
                with _gpu_environment(devices[index], shared=workers > len(set(devices))):
                    slots[index].start()
        if all(process is None for process in slots):
            return
        time.sleep(1.0)


def machine_workers(memory_gb: float) -> int:
    """Workers this machine runs well: one per usable CPU core, as many as the available
    memory holds at `memory_gb` each (at least one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = cores or 1
    try:
        with open("/proc/meminfo") as handle:
            info = dict(line.split(":", 1) for line in handle)
        available_gb = int(info["MemAvailable"].split()[0]) / 2**20
        workers = min(workers, max(1, int(available_gb // memory_gb)))
    except (OSError, KeyError, ValueError):
        pass  # not Linux: the cores alone
    return workers


def gpu_assignments(workers: int, gpu_ids: list[str]) -> list[str | None]:
    """The GPUs each local worker may see, as CUDA_VISIBLE_DEVICES values (None: no GPUs).

    Each worker's trials run their own `tf.distribute` strategy, which by default takes every
    visible GPU and nearly all its memory, so workers that saw the same GPUs would starve each
    other. With at least as many GPUs as workers each worker gets its own contiguous share;
    with more workers than GPUs they take turns on one GPU each and share it.
    """
    if not gpu_ids:
        return [None] * workers
    if workers <= len(gpu_ids):
        bounds = [len(gpu_ids) * i // workers for i in range(workers + 1)]
        return [",".join(gpu_ids[bounds[i]:bounds[i + 1]]) for i in range(workers)]
    return [gpu_ids[i % len(gpu_ids)] for i in range(workers)]


def _local_gpu_ids() -> list[str]:
    """This host's GPUs as CUDA ids, respecting a CUDA_VISIBLE_DEVICES the user set."""
    import tensorflow as tf

    count = len(tf.config.list_physical_devices("GPU"))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [d.strip() for d in visible.split(",") if d.strip()][:count]
    return [str(i) for i in range(count)]


@contextlib.contextmanager
def _gpu_environment(devices: str | None, *, shared: bool) -> Iterator[None]:
    """Sets CUDA_VISIBLE_DEVICES (and, on shared GPUs, on-demand memory) while spawning."""
    if devices is None:
        yield
        return
    saved = {key: os.environ.get(key) for key in ("CUDA_VISIBLE_DEVICES",
                                                  "TF_FORCE_GPU_ALLOW_GROWTH")}
    os.environ["CUDA_VISIBLE_DEVICES"] = devices
    if shared:  # workers sharing a GPU must not each reserve all of its memory up front
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
