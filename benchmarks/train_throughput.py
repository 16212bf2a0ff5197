"""Images/second of our training step versus keras.applications' B0 under `fit` (not a test).

Rows: {our custom step (train.py's Loop: strategy.run, L2, label smoothing, EMA), Keras'
EfficientNetB0 compiled with the same optimizer and loss} x {jit_compile off, on} x {input
pipeline excluded (one cached batch repeated), included (data.make_pipeline with Inception
crop + flip from uint8 images)}. Same batch, same process. Each row: a warm-up block (tracing,
compiling) then `--rounds` timed blocks of `--steps` steps; best and median block reported,
since two-thread TF on 2 cores alternates between ~1 and ~2 busy cores. XLA is 10-13x slower
on CPU, so jit rows run `--jit_steps` steps only.

    python benchmarks/train_throughput.py                          # B0 at 64 px, batch 32
    python benchmarks/train_throughput.py --resolution 224 --batch 64 --precision mixed_float16
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from efficientnet_search import data  # noqa: E402
from efficientnet_search.data.config import DataConfig  # noqa: E402
from efficientnet_search.training import distribute, recipe  # noqa: E402
from efficientnet_search.training.loop import Loop  # noqa: E402
from efficientnet_search.training.recipe import RecipeConfig  # noqa: E402
from efficientnet_search.training.train import ModelConfig, TrainConfig  # noqa: E402

NUM_CLASSES = 10


def _config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(variant="b0", resolution=args.resolution),
        data=DataConfig(source="synthetic", augment="inception", cache=True,
                        batch_size=args.batch),
        train=RecipeConfig(epochs=1), strategy="cpu", precision=args.precision, verbose=0,
    )


def _splits(args: argparse.Namespace):
    n = args.batch * (max(args.steps, args.jit_steps) + 2)
    return data.synthetic_splits(num_classes=NUM_CLASSES, image_size=args.resolution,
                                 channels=3, n_train=n, n_val=args.batch)  # fmt: skip


def _fixed_batches(loop: Loop) -> tf.data.Dataset:
    images, labels = next(iter(loop._pipeline(loop.train_source, training=True)))
    return tf.data.Dataset.from_tensors((images, labels)).repeat()


def _blocks(step_fn, iterator, args, steps: int) -> list[float]:
    """Images/second of each timed block (after one untimed warm-up block)."""
    rates = []
    for block in range(args.rounds + 1):
        tic = time.perf_counter()
        for _ in range(steps if block else 2):
            loss = step_fn(iterator)
        float(loss)  # wait for the last step
        if block:
            rates.append(steps * args.batch / (time.perf_counter() - tic))
    return rates


def ours(args, dist, jit: bool, pipeline: bool) -> list[float]:
    loop = Loop(_config(args), dist, _splits(args), run_dir=Path(args.tmp),
                write_dir=Path(args.tmp))  # fmt: skip
    ds = loop._pipeline(loop.train_source, training=True) if pipeline else _fixed_batches(loop)
    iterator = iter(dist.strategy.experimental_distribute_dataset(ds))
    step = loop._train_step
    if jit:  # the iterator cannot live inside an XLA cluster: compile the replica step only
        compiled = tf.function(
            lambda x, y: dist.strategy.run(loop._replica_step, args=(x, y)), jit_compile=True)
        step = lambda it: compiled(*next(it))  # noqa: E731
    return _blocks(step, iterator, args, args.jit_steps if jit else args.steps)


def reference(args, dist, jit: bool, pipeline: bool) -> list[float]:
    loop = Loop(_config(args), dist, _splits(args), run_dir=Path(args.tmp),
                write_dir=Path(args.tmp))  # fmt: skip
    ds = loop._pipeline(loop.train_source, training=True) if pipeline else _fixed_batches(loop)
    ds = ds.map(lambda x, y: (x, tf.one_hot(y, NUM_CLASSES)))
    model = keras.applications.EfficientNetB0(
        weights=None, input_shape=(args.resolution, args.resolution, 3), classes=NUM_CLASSES)
    model.compile(optimizer=recipe.make_optimizer(loop.config.train, loop.schedule,
                                                  precision=dist.precision),
                  loss=recipe.classification_loss(0.1), jit_compile=jit)  # fmt: skip
    steps = args.jit_steps if jit else args.steps
    times: list[float] = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: times.append(time.perf_counter()),
        on_epoch_end=lambda e, logs: times.append(time.perf_counter()),
    )
    model.fit(ds, steps_per_epoch=steps, epochs=args.rounds + 1, verbose=0, callbacks=[timer],
              shuffle=False)
    spans = [times[i + 1] - times[i] for i in range(2, len(times), 2)]  # skip the warm-up
    return [steps * args.batch / s for s in spans]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--jit_steps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="float32", choices=distribute.PRECISIONS)
    parser.add_argument("--no_jit", action="store_true", help="skip the jit_compile rows")
    parser.add_argument("--tmp", default="/tmp/train_throughput")
    args = parser.parse_args()
    dist = distribute.setup("auto", precision=args.precision)
    rows = []
    for jit in (False,) if args.no_jit else (False, True):
        for pipeline in (False, True):
            for name, fn in (("ours (custom step)", ours), ("keras B0 (fit)", reference)):
                rates = fn(args, dist, jit, pipeline)
                rows.append((name, jit, pipeline, max(rates), statistics.median(rates)))
                print(f"  {rows[-1][0]:<20} jit={jit!s:<5} pipeline={pipeline!s:<5} "
                      f"best {rows[-1][3]:7.1f} img/s", flush=True)  # fmt: skip
    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU x{os.cpu_count()}"
    print(f"\nB0 training, {args.resolution} px, batch {args.batch}, {args.precision}, "
          f"{device}, {args.steps} steps x {args.rounds} rounds (jit: {args.jit_steps})")
    print(f"| {'model':<20} | jit   | pipeline | best img/s | median img/s |")
    print(f"|{'-' * 22}|-------|----------|------------|--------------|")
    for name, jit, pipeline, best, median in rows:
        print(f"| {name:<20} | {'on' if jit else 'off':<5} | "
              f"{'incl.' if pipeline else 'excl.':<8} | {best:10.1f} | {median:12.1f} |")


if __name__ == "__main__":
    main()
