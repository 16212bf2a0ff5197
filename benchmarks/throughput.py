"""Training and inference throughput of our B0 / V2-B0 versus keras.applications' (not a test).

Both models train on the same random data with the same optimizer, in one process, timed in
alternation (best of several rounds, since two-thread TF on 2 cores alternates between ~1 and
~2 busy cores from epoch to epoch). Peak resident memory of a training run is measured per
model in a fresh child process, so the two do not share a high-water mark.

    python benchmarks/throughput.py                 # 224 px batch 32 and 64 px batch 64
    python benchmarks/throughput.py --sizes 64:64 --rounds 3 --steps 10
    python benchmarks/throughput.py --variants b0 v2-b0 --sizes 64:64   # EfficientNetV2B0 too
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from efficientnet_search import build_model  # noqa: E402

REFERENCE = {"b0": "EfficientNetB0", "v2-b0": "EfficientNetV2B0"}


def make_model(which: str, resolution: int, variant: str = "b0") -> keras.Model:
    shape = (resolution, resolution, 3)
    if which == "ours":
        model = build_model(variant, input_shape=shape)
    else:
        model = getattr(keras.applications, REFERENCE[variant])(weights=None, input_shape=shape)
    model.compile(
        optimizer=keras.optimizers.RMSprop(0.01, rho=0.9, momentum=0.9, epsilon=1e-3),
        loss="sparse_categorical_crossentropy",
    )
    return model


def random_data(resolution: int, batch: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, resolution, resolution, 3)).astype("float32")
    y = rng.integers(0, 1000, (batch,))
    return tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2)


def time_train(model: keras.Model, data: tf.data.Dataset, steps: int, batch: int) -> float:
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return steps * batch / (time.perf_counter() - start)


def time_infer(model: keras.Model, data: tf.data.Dataset, steps: int, batch: int) -> float:
    images = data.map(lambda x, y: x)
    start = time.perf_counter()
    model.predict(images, steps=steps, verbose=0)
    return steps * batch / (time.perf_counter() - start)


def measure(resolution: int, batch: int, steps: int, rounds: int,
            variant: str = "b0") -> dict[str, dict[str, float]]:
    data = random_data(resolution, batch)
    models = {which: make_model(which, resolution, variant) for which in ("ours", "keras")}
    for model in models.values():  # build and trace outside the timed region
        time_train(model, data, 2, batch)
        time_infer(model, data, 2, batch)
    best = {w: {"train": 0.0, "infer": 0.0} for w in models}
    for _ in range(rounds):
        for which, model in models.items():
            best[which]["train"] = max(best[which]["train"], time_train(model, data, steps, batch))
            best[which]["infer"] = max(best[which]["infer"], time_infer(model, data, steps, batch))
    return best


def peak_training_rss_mb(which: str, resolution: int, batch: int, steps: int,
                         variant: str = "b0") -> float:
    """Peak RSS (MiB) of a child process that builds and trains one model.

    Read from the child's own VmHWM: `ru_maxrss` would also count the parent's pages that the
    child held between fork and exec.
    """
    code = (
        f"import sys; sys.path.insert(0, {os.getcwd()!r}); from benchmarks.throughput import *; "
        f"m = make_model({which!r}, {resolution}, {variant!r}); "
        f"time_train(m, random_data({resolution}, {batch}), {steps}, {batch}); "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["224:32", "64:64"],
                        help="resolution:batch pairs")
    parser.add_argument("--variants", nargs="+", default=["b0"], choices=sorted(REFERENCE),
                        help="b0 (EfficientNetB0) and/or v2-b0 (EfficientNetV2B0)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no_memory", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    rows = []
    for variant in args.variants:
        for size in args.sizes:
            rows.append(_row(variant, size, args))
    _print(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


def _row(variant: str, size: str, args: argparse.Namespace) -> dict:
    resolution, batch = (int(v) for v in size.split(":"))
    best = measure(resolution, batch, args.steps, args.rounds, variant)
    memory = {} if args.no_memory else {
        w: peak_training_rss_mb(w, resolution, batch, args.steps, variant) for w in best}
    return {"variant": variant, "resolution": resolution, "batch": batch, **{
        f"{w}_{k}": round(v, 1) for w in best for k, v in best[w].items()},
        **{f"{w}_peak_rss_mb": round(v) for w, v in memory.items()}}


def _print(rows: list[dict]) -> None:
    header = ("model", "res", "batch", "train ours", "train keras", "ratio", "infer ours",
              "infer keras", "ratio", "peak MiB ours", "peak MiB keras")
    print(" | ".join(header))
    for r in rows:
        print(" | ".join(str(v) for v in (
            r["variant"], r["resolution"], r["batch"], r["ours_train"], r["keras_train"],
            f"{r['ours_train'] / r['keras_train']:.3f}", r["ours_infer"], r["keras_infer"],
            f"{r['ours_infer'] / r['keras_infer']:.3f}", r.get("ours_peak_rss_mb", "-"),
            r.get("keras_peak_rss_mb", "-"))))
    print(f"machine: {os.cpu_count()} CPUs, TF {tf.__version__}, Keras {keras.__version__}; "
          "images/second, best of rounds")


if __name__ == "__main__":
    main()
