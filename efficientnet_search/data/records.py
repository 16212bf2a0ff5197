"""What every reader returns: a `Source` of up to three `Table`s, addressable by example index.

A table knows its size and, when that is cheap, its labels, and makes a `tf.data.Dataset` of
`(image uint8 [H, W, C], label)` for any subset of its example indices, so that
`splits.load_splits` can carve validation data and subsample on indices for every source alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

_LARGE_ARRAY_BYTES = 1 << 30  # above this, arrays feed tf.data through a generator


@dataclasses.dataclass(frozen=True)
class Table:
    """One split of a source, addressable by example index.

    Attributes:
        size: number of examples.
        labels: int32 [size] class ids or float32 [size, K] multi-hot; None when unknown
            without reading the data (then selection is random, not stratified).
        to_dataset: maps sorted example indices (or None for all) to an unbatched dataset of
            `(image uint8 [H, W, C], label)`.
    """

    size: int
    labels: np.ndarray | None
    to_dataset: Callable[[np.ndarray | None], tf.data.Dataset]


@dataclasses.dataclass(frozen=True)
class Source:
    """Everything a reader found: tables and the label space."""

    train: Table
    val: Table | None
    test: Table | None
    num_classes: int
    multi_label: bool
    channels: int
    class_names: tuple[str, ...]



def array_table(images: np.ndarray, labels: np.ndarray) -> Table:
    """A table over in-memory arrays: images uint8 [N, H, W, C], labels int32 or float32."""

    def to_dataset(indices: np.ndarray | None) -> tf.data.Dataset:
        x = images if indices is None else images[indices]
        y = labels if indices is None else labels[indices]
        if x.nbytes <= _LARGE_ARRAY_BYTES:
            return tf.data.Dataset.from_tensor_slices((x, y))
        # Large arrays would be copied into the graph; stream them instead.
        spec = (
            tf.TensorSpec(x.shape[1:], tf.uint8),
            tf.TensorSpec(y.shape[1:], tf.as_dtype(y.dtype)),
        )
        ds = tf.data.Dataset.from_generator(lambda: zip(x, y, strict=True), output_signature=spec)
        return ds.apply(tf.data.experimental.assert_cardinality(len(x)))

    return Table(size=len(images), labels=labels, to_dataset=to_dataset)


def path_table(paths, labels: np.ndarray, decode: Callable) -> Table:
    """A table over files named by `paths`, each decoded lazily by `decode(path, label)`."""
    paths_array = np.asarray(paths)

    def to_dataset(indices: np.ndarray | None) -> tf.data.Dataset:
        p = paths_array if indices is None else paths_array[indices]
        y = labels if indices is None else labels[indices]
        ds = tf.data.Dataset.from_tensor_slices((p, y))
        return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    return Table(size=len(paths_array), labels=labels, to_dataset=to_dataset)
