"""The sections of benchmarks/gpu_check.py, one per process (see that file's docstring).

    python -m benchmarks.gpu_check_sections NUMBER SETTINGS_JSON OUT_JSON

NUMBER 0 describes the devices; 1-5 are the sections. What a section measures goes into
OUT_JSON as soon as it is measured (`Recorder`), so a section stopped at its time limit keeps
its earlier figures, and the step it was in is named.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.gpu_check import REPO, Settings  # noqa: E402
from efficientnet_search import (  # noqa: E402
    B0_BLOCK_STRINGS,
    build_model,
    load_config,
    make_pipeline,
)
from efficientnet_search.jsonio import to_plain  # noqa: E402
from efficientnet_search.training import distribute  # noqa: E402
from efficientnet_search.training.latency import device_name  # noqa: E402

NUM_CLASSES = 1000  # section 1 and 2 stand in for ImageNet training
MARGIN_S = 5.0  # a command started here ends this long before the section's deadline


class Recorder:
    """The section's output file, rewritten whole (atomically) after every figure."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state: dict[str, Any] = {"data": {}, "running": None, "process_groups": []}

    def put(self, key: str, value: Any) -> None:
        self.state["data"][key] = value
        self._write()

    def step(self, what: str | None) -> None:
        """Names what is being measured now (the parent reports it if the limit strikes)."""
        self.state["running"] = what
        self._write()

    def set(self, key: str, value: Any) -> None:
        self.state[key] = value
        self._write()

    def _write(self) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(to_plain(self.state), indent=2))
        partial.replace(self.path)


def run_command(command: Sequence[str], limit_s: float, log: Path,
                record: Recorder) -> dict[str, Any]:
    """Runs a CLI command in its own process group, stopped at `limit_s`; its output goes
    to `log`. The group is recorded, so the parent can end it if this process is stopped."""
    tic = time.monotonic()
    with open(log, "w") as handle:
        process = subprocess.Popen(list(command), cwd=REPO, stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        record.set("process_groups", [*record.state["process_groups"], process.pid])
        try:
            rc, timed_out = process.wait(timeout=max(limit_s, 1.0)), False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            rc, timed_out = process.wait(), True
    record.set("process_groups", [g for g in record.state["process_groups"] if g != process.pid])
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if rc else []
    return {"rc": rc, "timed_out": timed_out, "wall_s": round(time.monotonic() - tic, 2),
            "log": str(log), "output_tail": tail}


def time_left(settings: Settings) -> float:
    return settings.deadline - time.time() - MARGIN_S


def on_device(*tensors: Any) -> list[tf.Tensor]:
    """Copies arrays to the first GPU (the CPU without one) once, before any timing."""
    device = "/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"
    with tf.device(device):
        return [tf.identity(tf.convert_to_tensor(t)) for t in tensors]


# ------------------------------------------------------------------ 0: the devices
def devices(settings: Settings, record: Recorder) -> None:
    gpus = tf.config.list_physical_devices("GPU")
    details = [tf.config.experimental.get_device_details(g) for g in gpus]
    record.put("gpus", [d.get("device_name", g.name) for d, g in zip(details, gpus, strict=True)])
    record.put("compute_capability", [list(d.get("compute_capability", ())) for d in details])
    record.put("tensorflow", tf.__version__)
    record.put("keras", keras.__version__)
    record.put("cuda_build", tf.sysconfig.get_build_info().get("cuda_version"))
    record.put("tf32", tf.config.experimental.tensor_float_32_execution_enabled())
    record.put("cpu_count", os.cpu_count())


# ------------------------------------------------------------------ 1: our B0 against Keras'
def _compiled(model: keras.Model, batch: int) -> keras.Model:
    # EfficientNet's optimizer (RMSProp, rho 0.9, momentum 0.9, eps 1e-3) at the reference's
    # 0.016 per 256 images (training.distribute.BASE_LR_PER_256). Under mixed_float16 Keras
    # wraps it in a LossScaleOptimizer itself.
    model.compile(
        optimizer=keras.optimizers.RMSprop(distribute.BASE_LR_PER_256 * batch / 256, rho=0.9,
                                           momentum=0.9, epsilon=1e-3),
        loss="sparse_categorical_crossentropy",
    )  # fmt: skip
    model.optimizer.build(model.trainable_variables)
    return model


def keras_reference(settings: Settings) -> keras.Model:
    """keras.applications.EfficientNetB0, or in a dry run the builder behind it at the dry
    run's width, depth and first `stages` stages: the public B0 has no such arguments, and
    tracing its full-depth training step takes ~30 s on 2 CPU cores. The builder is private
    in Keras 3; if it moves, the dry run falls back to the public B0 (slower, the same code
    path; the dry run's ratio is then of unlike models, and a dry run judges no target)."""
    shape = (settings.resolution, settings.resolution, 3)
    if settings.width is not None:
        try:
            from keras.src.applications.efficientnet import DEFAULT_BLOCKS_ARGS, EfficientNet
        except ImportError:
            pass
        else:
            blocks = DEFAULT_BLOCKS_ARGS[:settings.stages] if settings.stages else "default"
            return EfficientNet(settings.width, settings.depth or 1.0, settings.resolution,
                                blocks_args=blocks, weights=None, input_shape=shape,
                                classes=NUM_CLASSES)  # fmt: skip
    return keras.applications.EfficientNetB0(weights=None, input_shape=shape,
                                             classes=NUM_CLASSES)


def ours(settings: Settings) -> keras.Model:
    blocks = B0_BLOCK_STRINGS[:settings.stages] if settings.stages else None
    return build_model("b0", width=settings.width, depth=settings.depth,
                       resolution=settings.resolution, blocks=blocks, num_classes=NUM_CLASSES)


def _train_rates(settings: Settings, record: Recorder, precision: str) -> dict[str, Any]:
    """Both models under `precision`: first step (tracing), warm-up, then alternating timed
    blocks of `steps` steps on one batch that stays on the device."""
    rng = np.random.default_rng(0)
    shape = (settings.batch, settings.resolution, settings.resolution, 3)
    images, labels = on_device(rng.uniform(0, 255, shape).astype("float32"),
                               rng.integers(0, NUM_CLASSES, settings.batch).astype("int32"))
    steps, models, result = {}, {}, {}
    for name, builder in (("ours", ours), ("keras", keras_reference)):
        record.step(f"{precision}: building and tracing {name}")
        models[name] = model = _compiled(builder(settings), settings.batch)
        # Keras' own training step (loss scaling included) as one graph, fed from the device.
        steps[name] = tf.function(model.train_step, jit_compile=settings.jit)
        tic = time.perf_counter()
        float(steps[name]((images, labels))["loss"])
        first = time.perf_counter() - tic
        for _ in range(settings.warmup_steps):
            logs = steps[name]((images, labels))
        float(logs["loss"])
        result[name] = {"params": model.count_params(), "first_step_s": round(first, 2),
                        "rates": []}  # fmt: skip
    for round_index in range(settings.rounds):
        record.step(f"{precision}: timed round {round_index + 1}")
        for name, step in steps.items():
            tic = time.perf_counter()
            for _ in range(settings.steps):
                logs = step((images, labels))
            loss = float(logs["loss"])  # waits for the device to finish the block
            result[name]["rates"].append(settings.steps * settings.batch
                                         / (time.perf_counter() - tic))
            result[name]["loss_finite"] = bool(np.isfinite(loss))
    for name in steps:
        result[name]["images_per_s"] = statistics.median(result[name]["rates"])
    result["ratio"] = result["ours"]["images_per_s"] / result["keras"]["images_per_s"]
    return result


def model_throughput(settings: Settings, record: Recorder) -> None:
    previous = keras.mixed_precision.global_policy().name
    record.put("batch", settings.batch)
    record.put("resolution", settings.resolution)
    record.put("jit_compile", settings.jit)
    try:
        for precision in ("mixed_float16", "float32"):
            keras.mixed_precision.set_global_policy(precision)
            record.put(precision, _train_rates(settings, record, precision))
            keras.backend.clear_session()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    record.put("policy_restored", keras.mixed_precision.global_policy().name == previous)
    record.step(None)


# ------------------------------------------------------------------ 2: the input pipeline
def pipeline_throughput(settings: Settings, record: Recorder) -> None:
    """The training pipeline as `train` builds it (training.loop.Loop._pipeline: repeat, drop
    the remainder, no cache for training), from uint8 images already in memory (no decoding:
    an upper bound for a pipeline that reads JPEG files)."""
    rng = np.random.default_rng(0)
    side = settings.source_size
    images = rng.integers(0, 256, (settings.source_images, side, side, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, settings.source_images).astype(np.int32)
    source = tf.data.Dataset.from_tensor_slices((images, labels))
    record.put("source", f"{settings.source_images} uint8 images of {side}x{side} in memory")
    record.put("host_cpus", os.cpu_count())
    for augment in settings.augments:
        record.step(f"pipeline with augment={augment}")
        pipeline = make_pipeline(source, resolution=settings.resolution,
                                 batch_size=settings.batch, training=True, augment=augment,
                                 cache=False, seed=0, repeat=True, drop_remainder=True)
        batches = iter(pipeline)
        for _ in range(2):  # start the threads and fill the prefetch buffer
            next(batches)
        tic, count = time.perf_counter(), 0
        for _ in range(settings.pipeline_batches):
            count += int(next(batches)[0].shape[0])
        record.put(augment, {"images_per_s": count / (time.perf_counter() - tic),
                             "batches": settings.pipeline_batches})
    record.step(None)


# ------------------------------------------------------------------ 4: tf.distribute
def mirrored_step(settings: Settings, record: Recorder) -> None:
    """A MirroredStrategy training step as the project selects it (`gpu`; `mirrored` on CPU,
    the same strategy class), then `efficientnet-search train` on the smoke config."""
    previous = keras.mixed_precision.global_policy().name
    record.step("MirroredStrategy step")
    try:
        dist = distribute.setup(settings.strategy)
        strategy = dist.strategy
        batch = settings.batch * dist.num_replicas
        with strategy.scope():
            model = _compiled(ours(settings), batch)
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 255, (batch, settings.resolution, settings.resolution, 3))
        labels = rng.integers(0, NUM_CLASSES, batch)
        data = tf.data.Dataset.from_tensors((images.astype("float32"), labels)).repeat()
        tic = time.perf_counter()
        model.fit(data, steps_per_epoch=1 + settings.warmup_steps, epochs=1, verbose=0)
        first = time.perf_counter() - tic
        tic = time.perf_counter()
        history = model.fit(data, steps_per_epoch=settings.steps, epochs=1, verbose=0)
        rate = settings.steps * batch / (time.perf_counter() - tic)
        record.put("mirrored", {
            "strategy": type(strategy).__name__, "name": dist.name, "precision": dist.precision,
            "replicas": dist.num_replicas, "devices": list(strategy.extended.worker_devices),
            "global_batch": batch, "jit_compile": bool(model.jit_compile),
            "first_fit_s": round(first, 2), "images_per_s": rate,
            "loss_finite": bool(np.isfinite(history.history["loss"][-1])),
        })  # fmt: skip
    finally:
        keras.mixed_precision.set_global_policy(previous)
    _train_smoke(settings, record)


def _train_smoke(settings: Settings, record: Recorder) -> None:
    run_dir = Path(settings.work_dir) / "train_smoke"
    command = [sys.executable, "-m", "efficientnet_search.cli", "train",
               "--config", str(REPO / "configs/train/smoke.yaml"), "--run_dir", str(run_dir),
               "--strategy", settings.strategy]
    for item in settings.train_overrides:
        command += ["--set", item]
    record.step(f"train --strategy {settings.strategy}")
    outcome = run_command(command, time_left(settings), run_dir.parent / "train_smoke.log",
                          record)
    outcome["command"] = " ".join(command[2:])
    results = run_dir / "results.json"
    if results.is_file():
        payload = json.loads(results.read_text())
        outcome.update({k: payload.get(k) for k in (
            "strategy", "precision", "num_replicas", "images_per_second",
            "input_images_per_second", "val_top1", "wall_seconds")})
    _finish(record, "train", outcome)


def _finish(record: Recorder, key: str, outcome: dict[str, Any]) -> None:
    """Records a CLI run's outcome under `key`; fails the section when the command failed."""
    record.put(key, outcome)
    record.step(None)
    if outcome["rc"] != 0:
        raise RuntimeError(f"`{outcome['command'][:100]}` exited with {outcome['rc']}"
                           f"{' (time limit)' if outcome['timed_out'] else ''}: "
                           f"{' | '.join(outcome['output_tail'])}")


# ------------------------------------------------------------------ 5: latency
def latency(settings: Settings, record: Recorder) -> None:
    from efficientnet_search import GridConfig

    config = load_config(GridConfig, settings.grid_config, settings.plan_overrides)
    timing = config.candidates.latency
    batch = timing.batch_size or config.data.batch_size  # what time_spec uses
    # As the grid's CostMeter measures it: the proxy without its classifier, in this process
    # with the GPU visible (the grid times latency where it plans, before any worker starts).
    spec = dataclasses.replace(config.proxy.spec(*settings.candidate, num_classes=1),
                               include_top=False)
    _, time_spec = search_internals()
    runs = []
    for run in range(settings.latency_runs):
        record.step(f"latency run {run + 1}")
        measured = time_spec(timing, spec, config.data.batch_size)
        runs.append({"median_ms": measured.median_ms, "p10_ms": measured.p10_ms,
                     "spread": measured.spread, "repeats": measured.repeats,
                     "load_1min": os.getloadavg()[0]})  # fmt: skip
    medians = [r["median_ms"] for r in runs]
    middle = statistics.median(medians)
    record.put("repeatability", {
        "candidate": list(settings.candidate), "resolution": spec.scaling.resolution,
        "batch": batch, "precision": timing.precision, "runs": runs, "median_ms": middle,
        "range_over_median": (max(medians) - min(medians)) / middle,
        "max_deviation": max(abs(m - middle) for m in medians) / middle,
    })  # fmt: skip
    for cost in ("macs", "latency"):
        record.step(f"the grid's plan with candidates.cost={cost}")
        record.put(f"plan_{cost}", _plan(settings, cost))
    record.put("plan_comparison", _compare_plans(record.state["data"]))
    record.step(None)


def _plan(settings: Settings, cost: str) -> dict[str, Any]:
    from efficientnet_search import GridConfig

    config = load_config(GridConfig, settings.grid_config,
                         [*settings.plan_overrides, f"candidates.cost={cost}"])
    candidate_plan, _ = search_internals()
    tic = time.perf_counter()
    try:
        table = candidate_plan(config)
    except ValueError as err:  # a grid that admits nothing is a finding, not a crash
        return {"error": str(err), "seconds": time.perf_counter() - tic}
    keep = ("cost_ratio", "macs_ratio", "latency_ratio", "latency_ms")
    return {"seconds": time.perf_counter() - tic, "candidates": {
        c.key: {"kind": c.kind, **{k: table.attrs[c.key].get(k) for k in keep}}
        for c in table.candidates}}


def search_internals() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The two internals of efficientnet_search.search this check needs, imported here only:
    the grid's plan (admitted candidates with their measured costs, nothing trained;
    `candidate_plan(config)`) and the one way the grid times a proxy
    (`time_spec(latency_config, spec, default_batch)`). Paths as of the split of search/
    into subpackages (2026-12-06); the dry run fails here first if they move."""
    from efficientnet_search.search.grid.plan import candidate_plan
    from efficientnet_search.search.proxy.latency import time_spec

    return candidate_plan, time_spec


def _compare_plans(data: dict[str, Any]) -> dict[str, Any]:
    by_cost = {c: set(data[f"plan_{c}"].get("candidates") or ()) for c in ("macs", "latency")}
    return {"both": sorted(by_cost["macs"] & by_cost["latency"]),
            "macs_only": sorted(by_cost["macs"] - by_cost["latency"]),
            "latency_only": sorted(by_cost["latency"] - by_cost["macs"])}


def grid(settings: Settings, record: Recorder) -> None:
    from benchmarks import gpu_check_grid

    gpu_check_grid.grid_runs(settings, record, run_command)


# ------------------------------------------------------------------ 6: the one-shot supernet
def oneshot(settings: Settings, record: Recorder) -> None:
    """`efficientnet-search oneshot` with the supernet under `settings.strategy`: its phases'
    seconds and the networks it scored (results.json)."""
    run_dir = Path(settings.work_dir) / "oneshot"
    command = [sys.executable, "-m", "efficientnet_search.cli", "oneshot", "--config",
               settings.oneshot_config, "--run_dir", str(run_dir)]
    for item in (f"oneshot.train.strategy={settings.strategy}", *settings.oneshot_overrides):
        command += ["--set", item]
    record.step(f"oneshot --strategy {settings.strategy}")
    outcome = run_command(command, time_left(settings), run_dir.parent / "oneshot.log", record)
    outcome["command"] = " ".join(command[2:])
    outcome["strategy"] = settings.strategy
    results = run_dir / "results.json"
    if results.is_file():
        payload = json.loads(results.read_text())
        seconds = payload.get("seconds") or {}
        outcome.update({"scored": payload.get("scored"), "seconds": seconds,
                        "scored_per_s": (payload.get("scored") or 0) / seconds["search"]
                        if seconds.get("search") else None})  # fmt: skip
    _finish(record, "oneshot", outcome)


SECTION_FUNCTIONS: dict[int, Callable[[Settings, Recorder], None]] = {
    0: devices, 1: model_throughput, 2: pipeline_throughput, 3: grid, 4: mirrored_step,
    5: latency, 6: oneshot,
}


def main(argv: Sequence[str]) -> int:
    number, settings_path, out_path = argv
    settings = Settings.from_json(json.loads(Path(settings_path).read_text()))
    record = Recorder(Path(out_path))
    if number != "3":  # the grid's processes use the GPU, not this one: leave it untouched
        record.set("device", device_name())
    try:
        SECTION_FUNCTIONS[int(number)](settings, record)
    except Exception as err:  # noqa: BLE001 - recorded for the table; the next section runs
        traceback.print_exc()
        record.set("error", f"{type(err).__name__}: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
