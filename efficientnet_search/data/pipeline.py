"""Batched tf.data pipelines at a model's resolution: resize, cache, shuffle, augment.

Order of work, chosen for speed on small images: resize once (bilinear in float32, stored as
uint8) -> cache in memory when it fits -> shuffle (seeded) -> batch -> cast to float32 and
repeat grayscale to 3 channels -> augment whole batches (training only) -> prefetch.
Inception-style crops need the full image, so with `inception`/`randaugment` training the
originals are cached and cropped per image before batching. Pixels stay in [0, 255]; models
normalize inside.
"""

from __future__ import annotations

import functools
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

AUGMENTS = ("none", "flip", "medical", "inception", "randaugment")
EVAL_CROP_FRACTION = 0.875  # centre crop for evaluation: 224 of 256 (EfficientNet reference)
_AUTOTUNE = tf.data.AUTOTUNE


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
    deterministic: bool = True,
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
        deterministic: run the Keras augmentation layers one batch at a time, so the same
            seed gives the same batches; False runs them in parallel (faster on many cores,
            not reproducible, since the layers draw from one shared seed state).
    """
    _check_pipeline_args(augment, resolution, batch_size, one_hot, num_classes)
    cropping = augment in ("inception", "randaugment")
    if training and cropping:
        ds = _maybe_cache(ds, cache, _bytes_per_image(ds))
        ds = _shuffle_repeat(ds, shuffle_buffer, seed, repeat)
        ds = _random_crops(ds, resolution, seed)
    else:
        channels = ds.element_spec[0].shape[-1] or 3
        ds = _resize_all(ds, resolution, centre_crop=cropping)
        ds = _maybe_cache(ds, cache, resolution * resolution * channels)
        if training:
            ds = _shuffle_repeat(ds, shuffle_buffer, seed, repeat)
        elif repeat:
            ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=_AUTOTUNE)
    ds = ds.map(
        functools.partial(_finish, num_classes=num_classes if one_hot else None),
        num_parallel_calls=_AUTOTUNE,
    )
    augmenter = _augmenter(augment, seed, randaugment_factor) if training else None
    if augmenter is not None:
        ds = ds.map(
            lambda x, y: (tf.clip_by_value(augmenter(x, training=True), 0.0, 255.0), y),
            num_parallel_calls=None if deterministic else _AUTOTUNE,
        )
    return ds.prefetch(_AUTOTUNE)


def _finish(
    images: tf.Tensor, labels: tf.Tensor, num_classes: int | None
) -> tuple[tf.Tensor, tf.Tensor]:
    """float32 pixels, grayscale repeated to 3 channels, int labels one-hot if asked."""
    images = tf.cast(images, tf.float32)
    if images.shape[-1] == 1:
        images = tf.tile(images, [1, 1, 1, 3])
    if num_classes and labels.dtype.is_integer:
        labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
    return images, labels


def _random_crops(ds: tf.data.Dataset, resolution: int, seed: int) -> tf.data.Dataset:
    """Inception crops per image; stateless seeds from a seeded stream (new each epoch) keep
    them reproducible under a parallel map."""
    channels = ds.element_spec[0].shape[-1]
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def crop(example: tuple[tf.Tensor, tf.Tensor], pair: tf.Tensor) -> tuple:
        return _random_crop_flip(example[0], pair, resolution, channels), example[1]

    return tf.data.Dataset.zip(ds, seeds).map(crop, num_parallel_calls=_AUTOTUNE)


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
    """Bilinear resize in float32, antialiased only when shrinking (antialiasing changes
    nothing when enlarging but is ~17x slower, measured at 28 -> 32 px); [H,W,C] or batches."""
    images = tf.cast(images, tf.float32)
    size = [resolution, resolution]
    height, width = images.shape[-3], images.shape[-2]
    if height is not None and width is not None:
        shrink = height > resolution or width > resolution
        images = tf.image.resize(images, size, method="bilinear", antialias=shrink)
    else:
        hw = tf.shape(images)[-3:-1]
        images = tf.cond(
            tf.reduce_any(hw > resolution),
            lambda: tf.image.resize(images, size, method="bilinear", antialias=True),
            lambda: tf.image.resize(images, size, method="bilinear", antialias=False),
        )
    return tf.clip_by_value(images, 0.0, 255.0)


def _round_to_uint8(images: tf.Tensor) -> tf.Tensor:
    """Resized float pixels (already clipped to [0, 255]) back to uint8, rounded."""
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
        count = ds.cardinality()
        ds = ds.batch(1024).map(
            lambda x, y: (_round_to_uint8(_resize(x, resolution)), y), num_parallel_calls=_AUTOTUNE
        )
        ds = ds.unbatch()  # which forgets the count that caching and `sizes` rely on
        return ds.apply(tf.data.experimental.assert_cardinality(count)) if count >= 0 else ds

    def resize_one(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if centre_crop:
            image = _centre_crop(image)
        return _round_to_uint8(_resize(image, resolution)), label

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


def cache_budget_bytes() -> int:
    """What an in-memory cache of examples or features may take: a quarter of the RAM."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4


def _maybe_cache(ds: tf.data.Dataset, cache: bool, bytes_per_image: int) -> tf.data.Dataset:
    if not cache:
        return ds
    count = int(ds.cardinality())
    if 0 <= count and count * bytes_per_image <= cache_budget_bytes():
        return ds.cache()
    logging.warning("not caching %s examples (%s bytes each): over a quarter of RAM or unknown",
                 count, bytes_per_image)  # fmt: skip
    return ds


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


def resize_once(ds: tf.data.Dataset, resolution: int) -> tf.data.Dataset:
    """Every image resized to `resolution` and stored as uint8, exactly as `make_pipeline`
    does before its cache (without augmentation crops), so the result can be kept and fed
    back to `make_pipeline`, which then resizes nothing and gives the same batches."""
    return _resize_all(ds, resolution, centre_crop=False)
