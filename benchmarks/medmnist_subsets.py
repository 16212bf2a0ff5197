"""Small, imbalanced MedMNIST-layout subsets of a balanced set, for issue 27's targets.

    python benchmarks/medmnist_subsets.py [--source ../shared/data/pneumoniamnist_balanced.npz]
        [--out_dir runs/issue27/subsets] [--subsets 0 1 2]

Writes `pneumonia_small_S.npz` for each subset seed S: 500 training images (375 of class 0,
125 of class 1) drawn with `numpy.random.default_rng(S)` from the source's train split, then
80 validation images (60 / 20) from its val split with the same generator; and one test
subset shared by all (234 / 78 from the test split, 1:3 like the rest, `default_rng(100)`),
which only the final scoring reads. A validation split with 20 images of its rarer class is
"small" (medical/cv.py), so these exercise the cross-validated choices. This is how the
subset figures in BUILD_NOTES (issue 27) were made; the draws are deterministic.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "pneumoniamnist_balanced.npz"
TRAIN = (375, 125)  # class 0, class 1
VAL = (60, 20)
TEST = (234, 78)
TEST_SEED = 100


def draw(source, split: str, counts: tuple[int, int], rng: np.random.Generator):
    """(images, labels) of `split` with counts[c] images of class c, in a shuffled order."""
    labels = source[f"{split}_labels"]
    flat = labels.ravel()
    picked = [rng.choice(np.flatnonzero(flat == c), n, replace=False)
              for c, n in enumerate(counts)]
    order = rng.permutation(np.concatenate(picked))
    return source[f"{split}_images"][order], labels[order]


def make_subsets(source_path: Path, out_dir: Path, subsets: list[int]) -> list[Path]:
    """Writes one .npz per subset seed; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with np.load(source_path) as source:
        test = draw(source, "test", TEST, np.random.default_rng(TEST_SEED))
        paths = []
        for s in subsets:
            rng = np.random.default_rng(s)
            train, val = draw(source, "train", TRAIN, rng), draw(source, "val", VAL, rng)
            path = out_dir / f"pneumonia_small_{s}.npz"
            np.savez_compressed(path, train_images=train[0], train_labels=train[1],
                                val_images=val[0], val_labels=val[1],
                                test_images=test[0], test_labels=test[1])
            paths.append(path)
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SOURCE), help="a balanced MedMNIST-layout .npz")
    parser.add_argument("--out_dir", default=str(ROOT / "runs" / "issue27" / "subsets"))
    parser.add_argument("--subsets", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    source = Path(args.source)
    if not source.is_file():
        parser.error(f"no such file: {str(source)!r}; give the shared PneumoniaMNIST copy "
                     "(../shared/data/pneumoniamnist_balanced.npz, see its README)")
    for path in make_subsets(source, Path(args.out_dir), args.subsets):
        print(path)


if __name__ == "__main__":
    main()
