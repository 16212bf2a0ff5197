"""Data sources -> train/val/test splits -> batched tf.data pipelines at a model's resolution.

`load_splits(uri)` reads any source of the design (`fashion_mnist`, `npz:PATH`,
`folder:PATH`, `csv:PATH`, `tfds:NAME[:SPLIT]`, `medmnist:NAME`; readers in
`data_sources.py` and `data_tfds.py`) into unbatched datasets of `(image uint8 [H, W, C],
label)`. Validation comes from the source's own split, else it is carved from train with a
seeded, stratified draw; the test split is returned but never used to choose anything.

`make_pipeline(ds, resolution=..., ...)` resizes (bilinear, float32, pixels stay in
[0, 255]), repeats grayscale to 3 channels, caches, shuffles, augments (training only),
batches and prefetches. Models take pixels in [0, 255] and normalize inside.

    splits = load_splits("fashion_mnist", max_train=10_000, max_val=5_000, seed=0)
    train = make_pipeline(splits.train, resolution=32, batch_size=128, training=True)
    val = make_pipeline(splits.val, resolution=32, batch_size=256, training=False)
"""

from __future__ import annotations

import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from efficientnet_search import data_synthetic
from efficientnet_search.data_sources import ACCEPTED_URIS, Source, Table, array_table
from efficientnet_search.data_synthetic import write_csv, write_image_folder, write_npz

__all__ = [
    "ACCEPTED_URIS", "AUGMENTS", "DataSplits", "dataset_to_numpy", "load_splits",
    "make_pipeline", "measure_throughput", "synthetic_splits", "write_csv",
    "write_image_folder", "write_npz",
]  # fmt: skip

AUGMENTS = ("none", "flip", "medical", "inception", "randaugment")
EVAL_CROP_FRACTION = 0.875  # centre crop for evaluation: 224 of 256 (EfficientNet reference)
_AUTOTUNE = tf.data.AUTOTUNE


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
    from efficientnet_search.data_sources import read_source

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


# ----------------------------------------------------------------------------- pipeline


def make_pipeline(
    ds: tf.data.Dataset,
    *,
    resolution: int,
    batch_size: int,
    training: bool,
    augment: str = "none",
    cache: bool = True,
    shuffle_buffer: int = 10_000,
    seed: int = 0,
    drop_remainder: bool = False,
    repeat: bool = False,
    num_classes: int | None = None,
    one_hot: bool = False,
    randaugment_factor: float = 0.5,
) -> tf.data.Dataset:
    """Turns an unbatched split into batches of (float32 [B, r, r, 3] in [0, 255], label).

    Args:
        ds: unbatched (image uint8 [H, W, C], label), as in `DataSplits`.
        resolution: output side length (the model's resolution).
        batch_size: examples per batch.
        training: shuffle and augment (evaluation pipelines do neither).
        augment: `none`; `flip` (horizontal); `medical` (horizontal flip, rotation up to
            ~11 degrees, contrast +-20%, Keras layers); `inception` (random resized crop of
            8-100% area, aspect 3/4-4/3, plus flip; evaluation takes a 0.875 centre crop, as
            the EfficientNet reference); `randaugment` (inception crop, flip and Keras'
            RandAugment with 2 ops).
        cache: cache the decoded, resized examples in memory when they fit (a quarter of
            RAM); augmentation always runs after the cache.
        shuffle_buffer: examples in the shuffle buffer (training only).
        seed: seeds shuffling and augmentation: same seed, same batches.
        drop_remainder: drop the last incomplete batch.
        repeat: repeat forever (for step-based training).
        num_classes, one_hot: with `one_hot`, int labels become float32 one-hot vectors.
        randaugment_factor: Keras RandAugment `factor` in [0, 1] (1 is the strongest, about
            the reference's magnitude 10 on its 0-10 scale).
    """
    _check_pipeline_args(augment, resolution, batch_size, one_hot, num_classes)
    channels = ds.element_spec[0].shape[-1]
    cropping = augment in ("inception", "randaugment")
    if training and cropping:
        ds = _maybe_cache(ds, cache, _bytes_per_image(ds))
        ds = _shuffle_repeat(ds, shuffle_buffer, seed, repeat)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda example, s: (
                _random_crop_flip(example[0], s, resolution, channels),
                example[1],
            ),
            num_parallel_calls=_AUTOTUNE,
        )
    else:
        ds = _resize_all(ds, resolution, centre_crop=cropping)
        ds = _maybe_cache(ds, cache, resolution * resolution * (channels or 3))
        if training:
            ds = _shuffle_repeat(ds, shuffle_buffer, seed, repeat)
        elif repeat:
            ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=_AUTOTUNE)

    def finish(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        images = tf.cast(images, tf.float32)
        if images.shape[-1] == 1:
            images = tf.tile(images, [1, 1, 1, 3])
        if one_hot and labels.dtype.is_integer:
            labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        return images, labels

    ds = ds.map(finish, num_parallel_calls=_AUTOTUNE)
    augmenter = _augmenter(augment, seed, randaugment_factor) if training else None
    if augmenter is not None:
        # Sequential on purpose: Keras layers draw from a seeded state variable, so one call
        # at a time keeps the augmentation the same run after run. Each call is a whole batch.
        ds = ds.map(lambda x, y: (tf.clip_by_value(augmenter(x, training=True), 0.0, 255.0), y))
    return ds.prefetch(_AUTOTUNE)


def _check_pipeline_args(
    augment: str, resolution: int, batch_size: int, one_hot: bool, num_classes: int | None
) -> None:
    if augment not in AUGMENTS:
        raise ValueError(f"unknown augment {augment!r}; accepted: {', '.join(AUGMENTS)}")
    if resolution < 1 or batch_size < 1:
        raise ValueError(f"resolution and batch_size must be >= 1, got {resolution=}, "
                         f"{batch_size=}")  # fmt: skip
    if one_hot and not num_classes:
        raise ValueError("one_hot=True needs num_classes")


def _resize(images: tf.Tensor, resolution: int) -> tf.Tensor:
    """Bilinear resize in float32 (antialiased when shrinking); works on [H,W,C] or batches."""
    images = tf.image.resize(
        tf.cast(images, tf.float32), [resolution, resolution], method="bilinear", antialias=True
    )
    return tf.clip_by_value(images, 0.0, 255.0)


def _to_uint8(images: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.round(images), tf.uint8)


def _centre_crop(image: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(image)
    side = tf.cast(EVAL_CROP_FRACTION * tf.cast(tf.minimum(shape[0], shape[1]), tf.float32),
                   tf.int32)  # fmt: skip
    top, left = (shape[0] - side + 1) // 2, (shape[1] - side + 1) // 2
    return image[top : top + side, left : left + side]


def _resize_all(ds: tf.data.Dataset, resolution: int, *, centre_crop: bool) -> tf.data.Dataset:
    """Resizes every image once, before the cache, stored back as uint8 (4x less memory)."""
    shape = ds.element_spec[0].shape
    if not centre_crop and shape[:2] == (resolution, resolution):
        return ds
    if not centre_crop and shape.is_fully_defined():
        # Fixed-size images: resize whole chunks at once, far faster than one by one.
        ds = ds.batch(1024).map(
            lambda x, y: (_to_uint8(_resize(x, resolution)), y), num_parallel_calls=_AUTOTUNE
        )
        return ds.unbatch()

    def resize_one(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if centre_crop:
            image = _centre_crop(image)
        return _to_uint8(_resize(image, resolution)), label

    return ds.map(resize_one, num_parallel_calls=_AUTOTUNE)


def _random_crop_flip(
    image: tf.Tensor, seed: tf.Tensor, resolution: int, channels: int | None
) -> tf.Tensor:
    """Inception-style crop: 8-100% of the area, aspect 3/4-4/3, min_object_covered 0.1,
    10 attempts (EfficientNet reference preprocessing), resized, then a random flip."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    crop = _resize(tf.slice(image, begin, size), resolution)
    crop = tf.ensure_shape(crop, [resolution, resolution, channels])
    return tf.image.stateless_random_flip_left_right(crop, seed=seed + 1)


def _augmenter(augment: str, seed: int, randaugment_factor: float) -> keras.Sequential | None:
    if augment == "flip":
        layers = [keras.layers.RandomFlip("horizontal", seed=seed)]
    elif augment == "medical":
        layers = [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.03, seed=seed + 1),  # +-0.03 turn ~ +-11 degrees
            keras.layers.RandomContrast(0.2, value_range=(0, 255), seed=seed + 2),
        ]
    elif augment == "randaugment":
        layers = [keras.layers.RandAugment(
            value_range=(0, 255), num_ops=2, factor=randaugment_factor, seed=seed
        )]  # fmt: skip
    else:
        return None  # none, or inception (crop and flip happen per image before batching)
    return keras.Sequential(layers, name=f"augment_{augment}")


def _shuffle_repeat(ds: tf.data.Dataset, buffer: int, seed: int, repeat: bool) -> tf.data.Dataset:
    ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    return ds.repeat() if repeat else ds


def _bytes_per_image(ds: tf.data.Dataset) -> int:
    shape = ds.element_spec[0].shape
    if shape.is_fully_defined():
        return int(np.prod(shape))
    return 256 * 256 * (shape[-1] or 3)  # a guess for variable-size images


def _maybe_cache(ds: tf.data.Dataset, cache: bool, bytes_per_image: int) -> tf.data.Dataset:
    if not cache:
        return ds
    count = int(ds.cardinality())
    budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    if 0 <= count and count * bytes_per_image <= budget:
        return ds.cache()
    logging.info("not caching %s examples (%s bytes each): over a quarter of RAM or unknown",
                 count, bytes_per_image)  # fmt: skip
    return ds


# ----------------------------------------------------------------------------- helpers


def dataset_to_numpy(
    ds: tf.data.Dataset, max_examples: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stacks a small dataset (batched, or unbatched with fixed-size images) into arrays."""
    batched = len(ds.element_spec[0].shape) == 4
    xs, ys, count = [], [], 0
    for x, y in ds.as_numpy_iterator():
        xs.append(x if batched else x[None])
        ys.append(y if batched else np.asarray(y)[None])
        count += len(xs[-1])
        if max_examples is not None and count >= max_examples:
            break
    if not xs:
        raise ValueError("dataset_to_numpy: the dataset is empty")
    return np.concatenate(xs)[:max_examples], np.concatenate(ys)[:max_examples]


def measure_throughput(ds: tf.data.Dataset, *, batches: int = 50, warmup: int = 5) -> float:
    """Images per second of iterating a batched pipeline (after `warmup` batches), to tell
    whether training is input-bound. The machine's load makes it noisy: repeat it."""
    iterator = iter(ds)
    for _ in range(warmup):
        next(iterator)
    images, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            x, _ = next(iterator)
        except StopIteration:
            break
        images += int(x.shape[0])
    return images / max(time.perf_counter() - start, 1e-9)
