"""`folder:PATH` and `csv:PATH`: image files as a `records.Source`.

Files are listed and checked once at load time: every file is decoded in one parallel pass,
so an unreadable or corrupt image fails at once with its path, instead of deep inside
training. The pipeline then decodes them again lazily (and caches what fits in memory).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from efficientnet_search.data.records import Source, Table, path_table

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_CSV_SPLITS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}


def file_table(paths: Sequence[str], labels: np.ndarray, channels: int) -> Table:
    """A table over image files decoded lazily (PNG, JPEG, BMP, GIF) to `channels`."""
    def decode(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=channels, expand_animations=False
        )
        return tf.ensure_shape(image, [None, None, channels]), label

    return path_table(paths, labels, decode)


def check_images(paths: Sequence[str]) -> int:
    """Decodes every file once; returns the channel count to use (1 if all are grayscale).

    Raises:
        ValueError: naming the first file that is not a decodable image.
    """

    def probe(path: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        return tf.shape(image)[-1]

    ds = tf.data.Dataset.from_tensor_slices(np.asarray(paths)).map(
        probe, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    iterator = iter(ds)
    channels = set()
    for path in paths:
        try:
            channels.add(int(next(iterator)))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
            reason = error.message.splitlines()[0][:120]
            raise ValueError(f"cannot read image {path!r}: {reason}") from None
    return 1 if channels <= {1} else 3


def read_folder(path: str) -> Source:
    """`folder:PATH`: `PATH/<class>/*.png`, or `PATH/<split>/<class>/*.png` with split in
    train, val (or validation), test. Class names are the sorted train subfolder names."""
    files, class_names = list_folder(path, IMAGE_EXTENSIONS)
    channels = check_images([p for paths, _ in files.values() for p in paths])
    tables = {s: file_table(paths, labels, channels) for s, (paths, labels) in files.items()}
    return Source(
        train=tables["train"],
        val=tables.get("val"),
        test=tables.get("test"),
        num_classes=len(class_names),
        multi_label=False,
        channels=channels,
        class_names=class_names,
    )


def list_folder(
    path: str, extensions: Sequence[str]
) -> tuple[dict[str, tuple[list[str], np.ndarray]], tuple[str, ...]]:
    """Lists `PATH/<class>/FILE` or `PATH/<split>/<class>/FILE` (FILE ending in one of
    `extensions`; "" admits files without a suffix): ({split: (paths, labels)}, class names)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {str(root)!r}")
    subdirs = {d.name: d for d in root.iterdir() if d.is_dir()}
    if "train" in subdirs and set(subdirs) <= {"train", "val", "validation", "test"}:
        split_dirs = {s: subdirs[s] for s in ("train", "test") if s in subdirs}
        val = subdirs.get("val") or subdirs.get("validation")
        if val is not None:
            split_dirs["val"] = val
    else:
        split_dirs = {"train": root}
    class_names = tuple(sorted(d.name for d in split_dirs["train"].iterdir() if d.is_dir()))
    files = {s: _list_class_files(d, class_names, extensions) for s, d in split_dirs.items()}
    if not files["train"][0]:
        shown = "/".join(e or "(no suffix)" for e in extensions)
        raise ValueError(
            f"no images ({shown}) under {str(split_dirs['train'])!r}; "
            "expected PATH/<class>/FILE or PATH/train/<class>/FILE"
        )
    empty = [c for i, c in enumerate(class_names) if i not in set(files["train"][1].tolist())]
    if empty:
        raise ValueError(f"class folder(s) {empty} under {str(split_dirs['train'])!r} are empty")
    return files, class_names


def _list_class_files(
    folder: Path, class_names: tuple[str, ...], extensions: Sequence[str]
) -> tuple[list[str], np.ndarray]:
    paths, labels = [], []
    for label, name in enumerate(class_names):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        for file in sorted(class_dir.iterdir()):
            if file.is_file() and not file.name.startswith(".") and \
                    file.suffix.lower() in extensions:
                paths.append(str(file))
                labels.append(label)
    unknown = [d.name for d in folder.iterdir() if d.is_dir() and d.name not in class_names]
    if unknown:
        raise ValueError(f"{str(folder)!r} has class folders {unknown} not found in train")
    return paths, np.asarray(labels, dtype=np.int32)


def read_csv(path: str) -> Source:
    """`csv:PATH`: a header row, then an image path and one label column (class ids or
    names), or several 0/1 label columns (multi-label). An optional `split` column
    (train, val/validation, test) assigns rows to splits. Relative paths are resolved
    against the CSV's folder."""
    groups, class_names, multi_label = list_csv(path)
    channels = check_images([p for paths, _ in groups.values() for p in paths])
    tables = {split: file_table(paths, labels, channels)
              for split, (paths, labels) in groups.items()}
    return Source(tables["train"], tables.get("val"), tables.get("test"), len(class_names),
                  multi_label, channels, class_names)  # fmt: skip


def list_csv(
    path: str,
) -> tuple[dict[str, tuple[list[str], np.ndarray]], tuple[str, ...], bool]:
    """Reads a `path,label[,label...][,split]` CSV (see `read_csv`) into
    ({split: (absolute paths, labels)}, class names, multi_label), checking that files exist."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"csv file not found: {str(file)!r}")
    with open(file, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2 or len(rows[0]) < 2:
        raise ValueError(f"csv {str(file)!r} needs a header and rows of: path,label[,label...]")
    header, rows = [h.strip() for h in rows[0]], [r for r in rows[1:] if any(r)]
    split_col = header.index("split") if "split" in header else None
    label_cols = [i for i in range(1, len(header)) if i != split_col]
    for n, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ValueError(
                f"csv {str(file)!r} line {n}: {len(row)} fields, header has {len(header)}"
            )
    paths = [str((file.parent / r[0].strip()).resolve()) for r in rows]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"csv {str(file)!r}: image file not found: {missing[0]!r}")
    labels, class_names, multi_label = _csv_labels(rows, header, label_cols, file)
    if split_col is None:
        keep = {"train": np.arange(len(rows))}
    else:
        names = np.asarray([r[split_col].strip().lower() for r in rows])
        keep = {
            split: np.flatnonzero(np.isin(names, accepted))
            for split, accepted in _CSV_SPLITS.items()
        }
    groups = {split: ([paths[i] for i in rows_], labels[rows_])
              for split, rows_ in keep.items() if rows_.size}
    if "train" not in groups:
        raise ValueError(f"csv {str(file)!r} has no rows with split 'train'")
    return groups, class_names, multi_label


def _csv_labels(
    rows: list[list[str]], header: list[str], label_cols: list[int], file: Path
) -> tuple[np.ndarray, tuple[str, ...], bool]:
    if len(label_cols) > 1:
        try:
            values = np.asarray([[float(r[i]) for i in label_cols] for r in rows], np.float32)
        except ValueError:
            values = np.full((1, 1), 2.0, np.float32)
        if np.any((values != 0) & (values != 1)):
            raise ValueError(
                f"csv {str(file)!r}: several label columns {[header[i] for i in label_cols]} "
                "must all hold 0 or 1 (multi-label)"
            )
        return values, tuple(header[i] for i in label_cols), True
    raw = [r[label_cols[0]].strip() for r in rows]
    if all(v.lstrip("-").isdigit() for v in raw):
        ids = np.asarray([int(v) for v in raw], dtype=np.int32)
        if ids.min() < 0:
            raise ValueError(f"csv {str(file)!r}: label {ids.min()} out of range; accepted: >= 0")
        return ids, tuple(str(i) for i in range(ids.max() + 1)), False
    class_names = tuple(sorted(set(raw)))
    lookup = {name: i for i, name in enumerate(class_names)}
    return np.asarray([lookup[v] for v in raw], dtype=np.int32), class_names, False
