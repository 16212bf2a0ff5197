"""Input-pipeline throughput (images/s) of `efficientnet_search.data.splits.make_pipeline`.

    python benchmarks/data_throughput.py [--npz ../shared/data/pneumoniamnist_balanced.npz]

Prints, per setting, the first pass (decode, resize and cache included) and the best of
several cached passes. Timings on a shared machine are noisy: compare runs side by side.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from efficientnet_search import data  # noqa: E402

DEFAULT_NPZ = Path(__file__).resolve().parents[2] / "shared/data/pneumoniamnist_balanced.npz"


def epoch_rate(ds) -> float:
    """Images per second over one full pass of a batched dataset."""
    start, images = time.perf_counter(), 0
    for x, _ in ds:
        images += int(x.shape[0])
    return images / (time.perf_counter() - start)


def bench(name: str, split, *, passes: int = 3, **kwargs) -> None:
    ds = data.make_pipeline(split, **kwargs)
    first = epoch_rate(ds)
    best = max(epoch_rate(ds) for _ in range(passes))
    print(f"{name:<48} first pass {first:>9,.0f} img/s   cached best {best:>9,.0f} img/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", default=str(DEFAULT_NPZ))
    args = parser.parse_args()
    fm = data.load_splits("fashion_mnist")
    for augment in ("none", "flip", "medical", "inception"):
        bench(f"fashion_mnist train 54k 32px b128 {augment}", fm.train, resolution=32,
              batch_size=128, training=True, augment=augment)  # fmt: skip
    bench("fashion_mnist val 6k 32px b256 eval", fm.val, resolution=32, batch_size=256,
          training=False)  # fmt: skip
    if Path(args.npz).is_file():
        med = data.load_splits(f"npz:{args.npz}")
        for augment in ("none", "medical", "randaugment"):
            bench(f"npz train {med.sizes['train']} 64px b64 {augment}", med.train, resolution=64,
                  batch_size=64, training=True, augment=augment)  # fmt: skip


if __name__ == "__main__":
    main()
