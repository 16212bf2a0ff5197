"""Inference latency of a model on the device this process runs on.

The cost that matters for deployment is run time on the target hardware, and it ranks
architectures differently from multiply-adds: EfficientNet-X (Li et al. 2021) found other
scaling coefficients when the search measured latency on TPUs and GPUs. So a search can use
latency as its cost, measured here: the median of repeated timed forward passes of one batch
(after warm-up calls that trace the graph and settle caches), for a given batch size and
precision, recorded with the device's name so a number is never read without its machine.

Each timed call ends by copying the output to the host, which waits for an accelerator to
finish. The median (not the mean) resists the occasional call slowed by other processes;
`spread` says how much the calls varied.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import keras
import tensorflow as tf

from efficientnet_search.arch.model import ModelSpec, build_model
from efficientnet_search.training import distribute


@dataclasses.dataclass(frozen=True)
class Latency:
    """One latency measurement.

    Attributes:
      median_ms: median milliseconds of one forward pass of `batch_size` images.
      spread: (90th percentile - 10th percentile) / median of the timed calls.
      device: the device the calls ran on, in words (e.g. "GPU: NVIDIA H200").
      batch_size, precision: what was timed.
      repeats, warmup: timed calls made (at least the asked-for number; more when a minimum
        duration asked for them) and untimed calls before them.
      p10_ms: the 10th percentile of the timed calls (the machine's speed with the least
        interference; compare it with the median on a shared or noisy host).
    """

    median_ms: float
    spread: float
    device: str
    batch_size: int
    precision: str
    repeats: int
    warmup: int
    p10_ms: float = float("nan")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def measure_latency(
    spec_or_model: ModelSpec | keras.Model,
    *,
    batch_size: int = 1,
    precision: str = "float32",
    warmup: int = 5,
    repeats: int = 20,
    min_seconds: float = 0.0,
) -> Latency:
    """Times inference of a model (built from `spec_or_model` when it is a ModelSpec).

    Args:
      spec_or_model: the architecture, or a built model (then `precision` is only recorded;
        it must be the policy the model was built under).
      batch_size: images per call.
      precision: a Keras dtype policy ("float32", "mixed_float16", "mixed_bfloat16") or
        "auto" (mixed precision on accelerators, float32 on CPU).
      warmup, repeats: untimed calls, and the fewest timed calls.
      min_seconds: keep timing until the timed calls add up to at least this long. A small
        network's 20 calls last a fraction of a second, so one burst of interference moves
        its median; a fixed duration gives every network as many calls as it needs.
    """
    if batch_size < 1 or warmup < 1 or repeats < 3 or min_seconds < 0:
        raise ValueError(
            f"need batch_size >= 1, warmup >= 1, repeats >= 3 and min_seconds >= 0, got "
            f"{batch_size=}, {warmup=}, {repeats=}, {min_seconds=}"
        )
    policy = distribute.resolve_precision(precision, _device_kind())
    if isinstance(spec_or_model, ModelSpec):
        with _dtype_policy(policy):
            model = build_model(spec=spec_or_model)
    else:
        model = spec_or_model
    size = model.input_shape[1:]
    if None in size:
        raise ValueError(f"measure_latency needs a fixed input size, got input shape {size}")
    images = tf.random.uniform((batch_size, *size), 0, 255, seed=0)
    forward = tf.function(lambda x: model(x, training=False))
    for _ in range(warmup):
        forward(images).numpy()
    times: list[float] = []
    timed_s = 0.0
    while len(times) < repeats or timed_s < min_seconds:
        start = time.perf_counter()
        forward(images).numpy()
        times.append(1000 * (time.perf_counter() - start))
        timed_s += times[-1] / 1000
    median = statistics.median(times)
    deciles = statistics.quantiles(times, n=10)
    return Latency(median, (deciles[-1] - deciles[0]) / median, device_name(), batch_size,
                   policy, len(times), warmup, p10_ms=deciles[0])  # fmt: skip


def device_name() -> str:
    """The device TensorFlow places ops on by default, in words."""
    tpus = tf.config.list_logical_devices("TPU")
    if tpus:
        return f"TPU: {len(tpus)} core(s)"
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    return f"CPU: {_cpu_model()} ({threads} thread(s))"


def _device_kind() -> str:
    if tf.config.list_logical_devices("TPU"):
        return "tpu"
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@contextmanager
def _dtype_policy(policy: str) -> Iterator[None]:
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
