"""Train a (scaled) EfficientNet with the reference recipe, on any tf.distribute strategy.

    efficientnet-search train --config configs/train/smoke.yaml --run_dir runs/smoke
    efficientnet-search evaluate --model runs/smoke/model.keras --data fashion_mnist

One custom training step (`strategy.run` over a distributed dataset, the loss divided by the
global batch) serves every strategy: Keras 3's `fit` fails under MultiWorkerMirroredStrategy
(keras-team/keras#20585), and one code path means one behaviour everywhere.

Runs are preemption-safe: a tf.train.CheckpointManager saves the model, optimizer, weight
averages and step counter every `checkpoint_every_steps` steps and at every epoch end; running
the same command again resumes at the saved step (mid-epoch too: the epoch's input order is
seeded by the epoch, and the consumed batches are skipped). Only the chief writes the run
directory; other workers write to a temporary one. The run directory gets `config.yaml`,
`checkpoints/` (latest and `best/` by validation top-1), `logs/` (TensorBoard, history.csv),
`model.keras` (averaged weights) and `results.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import keras
from absl import logging

from efficientnet_search import config as config_lib
from efficientnet_search.data import config as data_config
from efficientnet_search.data.config import DataConfig
from efficientnet_search.jsonio import write_json
from efficientnet_search.training import distribute, progressive, recipe
from efficientnet_search.training.loop import Loop, evaluate_model, measure_input, open_logs
from efficientnet_search.training.progressive import ProgressiveConfig

# The train command's `data` defaults: 32 images per replica, horizontal flips.
TRAIN_DATA = DataConfig(batch_size=32, augment="flip")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which network to train. None means: take it from the variant (B0-B7 table)."""

    variant: str | None = "b0"
    width: float | None = None
    depth: float | None = None
    resolution: int | None = None
    dropout: float | None = None
    drop_connect_rate: float | None = None
    bn_momentum: float = 0.99  # reference; ~0.9 trains far better on short runs
    blocks: tuple[str, ...] | None = None
    weights: str | None = None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A whole training run: sections `model`, `data` and `train` (epochs and the recipe),
    then how it runs. `data.batch_size` is per replica; the global batch and the learning
    rate scale with the number of replicas (see distribute.scale_batch_and_lr)."""

    name: str = "train"
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=lambda: TRAIN_DATA)
    train: recipe.RecipeConfig = dataclasses.field(default_factory=recipe.RecipeConfig)
    progressive: ProgressiveConfig = dataclasses.field(default_factory=ProgressiveConfig)
    strategy: str = "auto"
    tpu: str | None = None
    precision: str = "auto"
    seed: int = 0
    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 3
    preemption_handler: bool = True  # TF's PreemptionCheckpointHandler on multi-worker/TPU
    input_benchmark_batches: int = 20
    verbose: int = 1

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "recipe": "train", "epochs": "train.epochs", "batch_size": "data.batch_size",
    }  # fmt: skip

    def __post_init__(self) -> None:
        for name in ("checkpoint_every_steps", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.strategy not in distribute.STRATEGY_NAMES:
            raise ValueError(
                f"strategy must be one of {list(distribute.STRATEGY_NAMES)}, got {self.strategy!r}"
            )
        if self.precision not in distribute.PRECISIONS:
            raise ValueError(
                f"precision must be one of {list(distribute.PRECISIONS)}, got {self.precision!r}"
            )


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a run achieved; also written to `run_dir/results.json`."""

    run_dir: str
    planned_steps: int
    completed_steps: int
    resumed_from_step: int
    epochs: int
    val_top1: float
    val_top5: float
    val_loss: float
    best_val_top1: float
    images_per_second: float
    input_images_per_second: float
    wall_seconds: float  # all invocations of a resumed run (each to its last checkpoint)
    global_batch_size: int
    num_replicas: int
    peak_learning_rate: float
    strategy: str
    precision: str
    params: int
    model_path: str


def train(config: TrainConfig, run_dir: str | Path | None = None) -> TrainResult:
    """Trains `config` in `run_dir` (default `runs/<config.name>`), resuming if it can.

    A finished run is not trained again: its recorded result is returned.
    """
    previous_policy = keras.mixed_precision.global_policy()
    try:
        return _train(config, Path(run_dir or Path("runs") / config.name))
    finally:  # the dtype policy is process-global: leave it as it was
        keras.mixed_precision.set_global_policy(previous_policy)


def _train(config: TrainConfig, run_dir: Path) -> TrainResult:
    start = time.perf_counter()
    dist = distribute.setup(config.strategy, tpu=config.tpu, precision=config.precision)
    finished = _finished_result(run_dir)
    if finished is not None:
        if dist.is_chief:
            config_lib.save_config(config, run_dir)  # refuses a different config
        logging.info("%s already finished (%d steps)", run_dir, finished.planned_steps)
        return finished
    keras.utils.set_random_seed(config.seed)
    splits = _load_data(config.data, config.seed)
    if dist.is_chief:  # after the data loads, so a bad source leaves no run behind
        config_lib.save_config(config, run_dir)
    # Non-chief workers write to a scratch directory: two writers on one file lock each other.
    write_dir = run_dir if dist.is_chief else Path(tempfile.mkdtemp(prefix="worker_"))
    try:
        loop = Loop(config, dist, splits, run_dir=run_dir, write_dir=write_dir, started=start)
        input_rate = measure_input(loop, config.input_benchmark_batches)
        with open_logs(write_dir) as logs:
            loop.fit(logs)
        result = _finish(loop, run_dir, write_dir, input_rate, loop.wall_seconds())
        if dist.is_chief:
            _print_summary(result)
    finally:
        if not dist.is_chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    return result


def _load_data(data: DataConfig, seed: int):
    splits = data_config.load(data, seed)
    if splits.multi_label:
        raise ValueError(
            f"train handles single-label classification; {data.source!r} is multi-label "
            "(use `efficientnet-search finetune` for multi-label sources)"
        )
    return splits


def _finish(loop: Loop, run_dir: Path, write_dir: Path, input_rate: float, wall: float):
    """Exports the averaged model, writes results.json and prints the summary."""
    model_path = write_dir / "model.keras"
    with loop.averaged_weights():
        model = loop.model
        if model.input_shape[1] is None:  # progressive learning: export at the final size
            model = progressive.fixed_size_model(model, loop.resolution)
        model.save(model_path)
    metrics = loop.last_metrics
    result = TrainResult(
        run_dir=str(run_dir), planned_steps=loop.planned_steps,
        completed_steps=loop.completed_steps, resumed_from_step=loop.resumed_from_step,
        epochs=loop.config.train.epochs, val_top1=metrics["top1"], val_top5=metrics["top5"],
        val_loss=metrics["loss"], best_val_top1=loop.best_top1,
        images_per_second=loop.images_per_second(), input_images_per_second=input_rate,
        wall_seconds=wall, global_batch_size=loop.global_batch,
        num_replicas=loop.dist.num_replicas, peak_learning_rate=loop.peak_lr,
        strategy=loop.dist.name, precision=loop.dist.precision,
        params=loop.model.count_params(), model_path=str(run_dir / "model.keras"),
    )
    write_json(write_dir / "results.json", result)
    return result


def _print_summary(result: TrainResult) -> None:
    run_dir, wall, input_rate = result.run_dir, result.wall_seconds, result.input_images_per_second
    print(
        f"{run_dir}: val top-1 {result.val_top1:.4f}, top-5 {result.val_top5:.4f} "
        f"(averaged weights) after {result.completed_steps}/{result.planned_steps} steps; "
        f"{result.images_per_second:.1f} img/s training, {input_rate:.1f} img/s input "
        f"pipeline; {wall:.1f} s wall. Model: {result.model_path}; "
        f"results: {Path(run_dir) / 'results.json'}"
    )


def _finished_result(run_dir: Path) -> TrainResult | None:
    path = run_dir / "results.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    names = {f.name for f in dataclasses.fields(TrainResult)}
    if data.get("completed_steps") != data.get("planned_steps") or set(data) != names:
        return None
    return TrainResult(**data)


def main(args: argparse.Namespace) -> None:
    """`efficientnet-search train`: config file + --set overrides + --strategy/--tpu/--seed."""
    overrides = list(args.set or [])
    for key in ("strategy", "tpu", "seed"):
        if getattr(args, key, None) is not None:
            overrides.append(f"{key}={getattr(args, key)}")
    config = config_lib.load_config(TrainConfig, args.config, overrides)
    run_dir = args.run_dir or str(Path("runs") / Path(args.config).stem)
    train(config, run_dir)


def evaluate_main(args: argparse.Namespace) -> None:
    """`efficientnet-search evaluate`: top-1/top-5 of a saved model on a split of a source."""
    from efficientnet_search import data as data_lib
    from efficientnet_search.training.saved import load_model

    model = load_model(args.model, name="--model")
    native = model.input_shape[1]
    resolution = args.resolution or native
    if resolution != native:
        logging.warning(
            "evaluating at %d px, but the model was built for %d px: accuracy usually drops "
            "away from the training resolution", resolution, native,
        )
        model = progressive.fixed_size_model(model, resolution)
    # `val` is the split `train` carves with its defaults (validation_fraction 0.1, seed 0).
    splits = data_config.load(DataConfig(source=args.data, batch_size=args.batch_size), seed=0)
    split = getattr(splits, args.split, None) if args.split in ("train", "val", "test") else None
    if split is None:
        raise ValueError(
            f"split must be train, val or test (and exist in {args.data!r}), got {args.split!r}"
        )
    ds = data_lib.make_pipeline(
        split, resolution=resolution, batch_size=args.batch_size, training=False, cache=False
    )
    metrics = evaluate_model(model, ds, splits.num_classes)
    print(
        f"{args.model} on {args.data} [{args.split}] at {resolution} px: "
        f"top-1 {metrics['top1']:.4f}, top-5 {metrics['top5']:.4f}, "
        f"loss {metrics['loss']:.4f} ({metrics['count']} images)"
    )


def tf_config_for(workers: list[str], index: int) -> str:
    """TF_CONFIG JSON for worker `index` of a cluster of `workers` ("host:port" each)."""
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


__all__ = [
    "TRAIN_DATA", "ModelConfig", "TrainConfig", "TrainResult", "evaluate_main", "main",
    "train", "tf_config_for",
]
