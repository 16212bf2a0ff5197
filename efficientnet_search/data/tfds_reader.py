"""`tfds:NAME[:SPLIT]`: TensorFlow Datasets builders as a `records.Source`.

Reads with `download=False` by default: offline, `tfds.load` with downloads allowed hangs
about 200 s before failing, while without them it fails at once (measured here, tfds 4.9.10).
Medical builders (colorectal_histology, patch_camelyon, pneumonia_mnist, malaria, chexpert,
diabetic_retinopathy_detection, curated_breast_imaging_ddsm) have image features of fixed or
variable size; the pipeline resizes, so both work. Under `tfds.testing.mock_data` the split
list is empty and examples are random; the reader then counts examples itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from efficientnet_search.data.records import Source, Table

# CheXpert's 14 observations, in the column order of its train.csv (Irvin et al., AAAI 2019).
CHEXPERT_OBSERVATIONS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
)  # fmt: skip
_LABEL_PASS_LIMIT = 100_000  # read all labels (images skipped) for stratification up to this
_VAL_SPLITS = ("validation", "val", "valid")


def read_tfds(
    spec: str, *, data_dir: str | None, manual_dir: str | None, download: bool
) -> Source:
    """Reads `NAME[:SPLIT]` (SPLIT is the training split, default `train`, slices allowed)."""
    import tensorflow_datasets as tfds

    name, _, split = spec.partition(":")
    split = split or "train"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"unknown tfds dataset {name!r}; see https://www.tensorflow.org/datasets/catalog"
        ) from None
    info = builder.info
    image_key, label_key = info.supervised_keys or ("image", "label")
    image_feature, label_feature = info.features[image_key], info.features[label_key]
    convert, num_classes, class_names = _label_converter(name, label_feature)
    kwargs: dict[str, Any] = {"data_dir": data_dir, "download": download}
    if manual_dir:
        kwargs["download_and_prepare_kwargs"] = {
            "download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)
        }

    def make(split_name: str) -> Table:
        return _table(name, split_name, kwargs, image_key, label_key, convert, info)

    known = set(info.splits.keys())
    val = next((s for s in _VAL_SPLITS if s in known), None)
    return Source(
        train=make(split),
        val=make(val) if val and split.startswith("train") else None,
        test=make("test") if "test" in known and not split.startswith("test") else None,
        num_classes=num_classes,
        multi_label=label_feature.__class__.__name__ == "Sequence",
        channels=int(image_feature.shape[-1] or 3),
        class_names=class_names,
    )


def _load(name: str, split: str, kwargs: dict[str, Any], **extra: Any) -> tf.data.Dataset:
    import tensorflow_datasets as tfds

    try:
        return tfds.load(name, split=split, shuffle_files=False, **kwargs, **extra)
    except AssertionError as error:  # tfds' way of saying "not prepared here"
        where = kwargs.get("data_dir") or "~/tensorflow_datasets"
        raise FileNotFoundError(
            f"tfds dataset {name!r} (split {split!r}) is not prepared in {where!r}: "
            f"{str(error).splitlines()[0][:160]} Pass download=True with internet access "
            "(manual datasets also need manual_dir), or data_dir where it is prepared"
        ) from None


def _table(name, split, kwargs, image_key, label_key, convert, info) -> Table:  # noqa: ANN001
    import tensorflow_datasets as tfds

    try:
        size = int(info.splits[split].num_examples)
    except (KeyError, ValueError):
        size = -1  # not known (mock data or an unprepared dataset): count it below
    labels = None
    if size < 0 or size <= _LABEL_PASS_LIMIT:
        skip = {image_key: tfds.decode.SkipDecoding()}
        ds = _load(name, split, kwargs, decoders=skip)
        ds = ds.map(lambda ex: convert(ex[label_key]), num_parallel_calls=tf.data.AUTOTUNE)
        chunks = [np.asarray(b) for b in ds.batch(4096).as_numpy_iterator()]
        labels = np.concatenate(chunks) if chunks else np.zeros((0,), np.int32)
        size = len(labels)

    def to_dataset(indices: np.ndarray | None) -> tf.data.Dataset:
        ds = _load(name, split, kwargs)
        count = size
        if indices is not None:
            mask = np.zeros(size, dtype=bool)
            mask[indices] = True
            keep = tf.constant(mask)

            def selected(index: tf.Tensor, _: Any) -> tf.Tensor:
                return keep[index]

            ds = ds.enumerate().filter(selected).map(lambda _, example: example)
            count = len(indices)
        ds = ds.map(
            lambda ex: (_as_8bit(ex[image_key]), convert(ex[label_key])),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return ds.apply(tf.data.experimental.assert_cardinality(count))

    return Table(size=size, labels=labels, to_dataset=to_dataset)


def _as_8bit(image: tf.Tensor) -> tf.Tensor:
    """A tfds image feature as uint8: 16-bit images (some medical sets) keep their top 8 bits,
    8-bit ones pass unchanged. Unlike the pipeline's float rounding, no value is rescaled."""
    if image.dtype == tf.uint16:
        return tf.cast(image // 257, tf.uint8)
    return tf.cast(image, tf.uint8)


def _label_converter(name: str, feature: Any) -> tuple[Any, int, tuple[str, ...]]:
    """Returns (tensor -> int32 id or float32 multi-hot, num_classes, class_names)."""
    kind = feature.__class__.__name__
    if kind == "ClassLabel":
        names = tuple(feature.names)
        return (lambda y: tf.cast(y, tf.int32)), len(names), names
    inner = getattr(feature, "feature", None)
    if kind == "Sequence" and inner.__class__.__name__ == "ClassLabel":
        if "positive" in inner.names:
            # Per-observation states (CheXpert): positive -> 1; negative, uncertain and
            # unmentioned -> 0 (the "U-Zeros" policy of Irvin et al. 2019).
            positive = inner.names.index("positive")
            names = (
                CHEXPERT_OBSERVATIONS
                if name == "chexpert"
                else tuple(str(i) for i in range(feature.shape[0] or len(CHEXPERT_OBSERVATIONS)))
            )
            return _states_to_multi_hot(positive, len(names)), len(names), names
        names = tuple(inner.names)
        count = len(names)
        return (
            (lambda y: tf.minimum(tf.reduce_sum(tf.one_hot(y, count), axis=0), 1.0)),
            count,
            names,
        )
    raise ValueError(
        f"tfds dataset {name!r}: label feature {feature!r} is not supported; accepted: "
        "ClassLabel, or a Sequence of ClassLabel (multi-label)"
    )


def _states_to_multi_hot(positive: int, count: int) -> Any:
    def convert(y: tf.Tensor) -> tf.Tensor:
        hot = tf.cast(tf.equal(y, positive), tf.float32)[:count]
        # Mock data draws random sequence lengths; real CheXpert always has `count`.
        return tf.ensure_shape(tf.pad(hot, [[0, count - tf.shape(hot)[0]]]), [count])

    return convert
