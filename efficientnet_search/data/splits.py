"""Data sources -> train/val/test splits -> batched tf.data pipelines at a model's resolution.

`load_splits(uri)` reads any source of the design (`fashion_mnist`, `npz:PATH`,
`folder:PATH`, `csv:PATH`, `tfds:NAME[:SPLIT]`, `medmnist:NAME`, `synthetic[:CLASSES]`;
readers in `sources.py`, `files.py` and `tfds_reader.py`) into unbatched datasets of
`(image uint8 [H, W, C], label)`. Validation comes from the source's own split, else it is
carved from train with a seeded, stratified draw; the test split is returned but never used
to choose anything.

`make_pipeline(ds, resolution=..., ...)` (in `pipeline.py`) resizes (bilinear, float32,
pixels stay in [0, 255]), repeats grayscale to 3 channels, caches, shuffles, augments
(training only), batches and prefetches. Models take pixels in [0, 255] and normalize inside.

    splits = load_splits("fashion_mnist", max_train=10_000, max_val=5_000, seed=0)
    # every command reads its `data:` section the same way: data.config.load(cfg, seed)
    train = make_pipeline(splits.train, resolution=32, batch_size=128, training=True)
    val = make_pipeline(splits.val, resolution=32, batch_size=256, training=False)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from efficientnet_search.data import synthetic as data_synthetic
from efficientnet_search.data.pipeline import (
    AUGMENTS,
    EVAL_CROP_FRACTION,
    dataset_to_numpy,
    make_pipeline,
    measure_throughput,
)
from efficientnet_search.data.records import Source, Table, array_table
from efficientnet_search.data.sources import ACCEPTED_URIS
from efficientnet_search.data.synthetic import write_csv, write_image_folder, write_npz

# `synthetic[:CLASSES]`: 32 px grayscale squares; train/val sizes unless max_train/max_val.
SYNTHETIC_IMAGE_SIZE = 32
SYNTHETIC_SIZES = (512, 128, 8)

__all__ = [
    "ACCEPTED_URIS", "AUGMENTS", "EVAL_CROP_FRACTION", "DataSplits", "dataset_to_numpy",
    "load_splits", "make_pipeline", "measure_throughput", "synthetic_splits", "write_csv",
    "write_image_folder", "write_npz",
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DataSplits:
    """Unbatched splits of one source and its label space.

    Attributes:
        train, val, test: datasets of (image uint8 [H, W, C], label); label is an int32
            scalar, or float32 multi-hot [num_classes] when `multi_label`. `test` is None
            when the source has no test split.
        num_classes: classes (or labels, when multi-label).
        multi_label: whether an image may carry several labels.
        channels: 1 or 3, as stored (the pipeline repeats grayscale to 3).
        sizes: examples per split, keys "train", "val", "test".
        class_names: one name per class.
    """

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset | None
    num_classes: int
    multi_label: bool
    channels: int
    sizes: dict[str, int]
    class_names: tuple[str, ...]


def load_splits(
    uri: str,
    *,
    validation_fraction: float = 0.1,
    seed: int = 0,
    max_train: int | None = None,
    max_val: int | None = None,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    download: bool | None = None,
) -> DataSplits:
    """Reads the source named by `uri` into train/val/test splits.

    Args:
        uri: one of `ACCEPTED_URIS`.
        validation_fraction: share of train carved out as validation when the source has no
            validation split of its own (seeded, stratified by class).
        seed: seed of every random choice here (carving, subsampling).
        max_train, max_val: keep at most this many examples (a seeded, stratified subset, so
            small proxies keep every class).
        data_dir: where tfds datasets are prepared, or where `medmnist:NAME` looks for
            NAME.npz (default ~/.medmnist), or an extra folder for Fashion-MNIST's idx files.
        manual_dir: manual downloads of tfds builders such as chexpert.
        download: allow downloads; None means the source's default (tfds: no, since offline
            `tfds.load` hangs ~200 s; medmnist and fashion_mnist: only when missing locally).

    Raises:
        ValueError, FileNotFoundError: one line naming the bad URI, file, key or value.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction=}")
    for name, value in (("max_train", max_train), ("max_val", max_val)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1 or None, got {name}={value}")
    from efficientnet_search.data.sources import parse_uri, read_source

    scheme, rest = parse_uri(uri)
    if scheme == "synthetic":
        train, val, test = SYNTHETIC_SIZES
        return synthetic_splits(num_classes=int(rest), image_size=SYNTHETIC_IMAGE_SIZE,
                                n_train=max_train or train, n_val=max_val or val, n_test=test,
                                seed=seed)  # fmt: skip
    source = read_source(uri, data_dir=data_dir, manual_dir=manual_dir, download=download)
    return splits_from_source(
        source, validation_fraction=validation_fraction, seed=seed,
        max_train=max_train, max_val=max_val,
    )  # fmt: skip


def splits_from_source(
    source: Source,
    *,
    validation_fraction: float = 0.1,
    seed: int = 0,
    max_train: int | None = None,
    max_val: int | None = None,
) -> DataSplits:
    """Chooses the train/val examples of `source` (see `load_splits`) and wraps them."""
    train_idx = np.arange(source.train.size)
    if source.val is None:
        n_val = int(round(validation_fraction * source.train.size))
        if not 1 <= n_val < source.train.size:
            raise ValueError(
                f"cannot carve {validation_fraction=} of {source.train.size} training "
                "examples into a validation split; give more data or another fraction"
            )
        rng = np.random.default_rng([seed, 0])
        val_idx = stratified_choice(source.train.size, source.train.labels, n_val, rng)
        train_idx = np.setdiff1d(train_idx, val_idx)
        val_table = source.train
    else:
        val_table, val_idx = source.val, np.arange(source.val.size)
    train_idx = _subsample(source.train, train_idx, max_train, np.random.default_rng([seed, 1]))
    val_idx = _subsample(val_table, val_idx, max_val, np.random.default_rng([seed, 2]))
    test = source.test
    return DataSplits(
        train=source.train.to_dataset(train_idx),
        val=val_table.to_dataset(val_idx),
        test=test.to_dataset(None) if test is not None else None,
        num_classes=source.num_classes,
        multi_label=source.multi_label,
        channels=source.channels,
        sizes={"train": len(train_idx), "val": len(val_idx), "test": test.size if test else 0},
        class_names=source.class_names,
    )


def stratified_choice(
    n: int, labels: np.ndarray | None, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Returns `count` sorted positions out of `n` keeping the class proportions of `labels`.

    Every class with an example is represented once `count` >= the number of classes.
    Multi-label or unknown labels (None) fall back to a uniform random draw.
    """
    if labels is None or labels.ndim != 1:
        return np.sort(rng.permutation(n)[:count])
    order = rng.permutation(n)
    shuffled = labels[order]
    _, classes, counts = np.unique(shuffled, return_inverse=True, return_counts=True)
    by_class = np.argsort(classes, kind="stable")
    starts = np.cumsum(counts) - counts
    rank = np.empty(n, dtype=np.int64)
    rank[by_class] = np.arange(n) - starts[classes[by_class]]
    # The k-th pick of a class sits at k / class_size; first picks of all classes go first.
    key = np.where(rank == 0, -1.0, rank / counts[classes])
    return np.sort(order[np.argsort(key, kind="stable")[:count]])


def _subsample(
    table: Table, indices: np.ndarray, limit: int | None, rng: np.random.Generator
) -> np.ndarray:
    if limit is None or limit >= len(indices):
        return indices
    labels = table.labels[indices] if table.labels is not None else None
    return indices[stratified_choice(len(indices), labels, limit, rng)]


def synthetic_splits(
    num_classes: int = 2,
    image_size: int = 32,
    channels: int = 1,
    n_train: int = 256,
    n_val: int = 64,
    n_test: int = 64,
    *,
    multi_label: bool = False,
    seed: int = 0,
) -> DataSplits:
    """Learnable generated splits: each class is a bright square in its own grid cell."""
    tables = {}
    for offset, (split, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        images, labels = data_synthetic.synthetic_arrays(
            n, num_classes=num_classes, image_size=image_size, channels=channels,
            multi_label=multi_label, seed=seed * 3 + offset,
        )  # fmt: skip
        tables[split] = array_table(images, labels)
    source = Source(
        train=tables["train"], val=tables["val"], test=tables["test"],
        num_classes=num_classes, multi_label=multi_label, channels=channels,
        class_names=tuple(f"class_{k}" for k in range(num_classes)),
    )  # fmt: skip
    return splits_from_source(source, seed=seed)
