"""Learnable generated images for tests and demos, and writers for every file source.

The class is drawn visibly: each class owns one cell of a 4x4 grid, and an image of that
class has a bright square in its cell over a dark noisy background (multi-label: one
square per present label). A tiny model learns it in a few steps, so tests can check that
training and fine-tuning really learn without downloading anything. The position is the
label, so train on it without flips or crops: a horizontal flip moves class 0's square into
class 3's cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

_GRID = 4  # cells per side: up to 16 classes


def synthetic_arrays(
    n: int,
    *,
    num_classes: int = 2,
    image_size: int = 32,
    channels: int = 1,
    multi_label: bool = False,
    class_shares: Sequence[float] | None = None,
    label_noise: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns (images uint8 [n, s, s, channels], labels int32 [n] or float32 [n, K]).

    Args:
      class_shares: single-label only: the share of each class (imbalanced sets); default
        balanced.
      label_noise: single-label only: the share of images that show the square of a class
        drawn uniformly at random instead of their label's, so that no classifier can be
        perfect and class weighting visibly moves the decisions (as on real, hard data).
    """
    if not 2 <= num_classes <= _GRID * _GRID:
        raise ValueError(f"num_classes must be in [2, {_GRID * _GRID}], got {num_classes=}")
    if channels not in (1, 3) or image_size < 2 * _GRID:
        raise ValueError(
            f"need channels 1 or 3 and image_size >= {2 * _GRID}, got {channels=}, {image_size=}"
        )
    rng = np.random.default_rng(seed)
    if multi_label:
        labels = (rng.random((n, num_classes)) < 0.4).astype(np.float32)
        present = labels.astype(bool)
    else:
        labels = _single_labels(n, num_classes, class_shares, rng)
        shown = labels.copy()
        if not 0.0 <= label_noise <= 1.0:
            raise ValueError(f"label_noise must be in [0, 1], got {label_noise=}")
        if label_noise > 0:  # drawn only then, so noise-free sets stay as they were
            noisy = rng.random(n) < label_noise
            shown[noisy] = rng.integers(0, num_classes, int(noisy.sum()))
        present = np.eye(num_classes, dtype=bool)[shown]
    images = rng.uniform(0, 70, (n, image_size, image_size, channels))
    cell = image_size // _GRID
    margin = max(1, cell // 6)
    for k in range(num_classes):
        row, col = divmod(k, _GRID)
        rows = slice(row * cell + margin, (row + 1) * cell - margin)
        cols = slice(col * cell + margin, (col + 1) * cell - margin)
        brightness = rng.uniform(170, 255, (n, 1, 1, channels))
        images[present[:, k], rows, cols, :] = brightness[present[:, k]]
    return np.round(images).astype(np.uint8), labels


def _single_labels(n: int, num_classes: int, shares: Sequence[float] | None,
                   rng: np.random.Generator) -> np.ndarray:
    """n labels, balanced by default, else in proportions `shares` (rounded, then shuffled)."""
    if shares is None:
        labels = np.arange(n, dtype=np.int32) % num_classes
    else:
        shares = np.asarray(shares, dtype=np.float64)
        if shares.shape != (num_classes,) or np.any(shares <= 0):
            raise ValueError(f"class_shares must be {num_classes} positive numbers, got "
                             f"{shares.tolist()}")
        counts = np.floor(shares / shares.sum() * n).astype(int)
        counts[np.argmax(shares)] += n - counts.sum()
        labels = np.repeat(np.arange(num_classes, dtype=np.int32), counts)
    return rng.permutation(labels).astype(np.int32)


def write_npz(
    path: str | Path,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    class_names: tuple[str, ...] | None = None,
) -> Path:
    """Writes `{split: (images, labels)}` in the MedMNIST layout (grayscale as [N, H, W])."""
    arrays = {}
    for split, (images, labels) in splits.items():
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels if labels.ndim == 2 else labels[:, None]
    if class_names is not None:
        arrays["class_names"] = np.asarray(class_names)
    path = Path(path)
    np.savez_compressed(path, **arrays)
    return path


def write_image_folder(
    root: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    class_names: tuple[str, ...] | None = None,
) -> Path:
    """Writes `root/<class>/<index>.png` (single-label) and returns `root`."""
    root = Path(root)
    names = class_names or tuple(f"class_{k}" for k in range(int(labels.max()) + 1))
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        _write_png(root / names[int(label)] / f"{i:05d}.png", image)
    return root


def write_csv(
    path: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    image_dir: str = "images",
    splits: list[str] | None = None,
) -> Path:
    """Writes PNGs under `path`'s folder / `image_dir` and a CSV of relative path, label(s)
    (one column per label when multi-label) and, if given, a `split` column."""
    path = Path(path)
    (path.parent / image_dir).mkdir(parents=True, exist_ok=True)
    multi = labels.ndim == 2
    header = ["path"] + ([f"label_{k}" for k in range(labels.shape[1])] if multi else ["label"])
    lines = [",".join(header + (["split"] if splits else []))]
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        relative = f"{image_dir}/{i:05d}.png"
        _write_png(path.parent / relative, image)
        values = [str(int(v)) for v in np.atleast_1d(label)]
        lines.append(",".join([relative, *values] + ([splits[i]] if splits else [])))
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_png(path: Path, image: np.ndarray) -> None:
    image = image if image.ndim == 3 else image[..., None]
    tf.io.write_file(str(path), tf.io.encode_png(tf.constant(image, tf.uint8)))
