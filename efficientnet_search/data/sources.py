"""Data sources named by URI, read into indexable tables of examples.

Each reader turns one URI into a `Source`: up to three `Table`s (train, val, test) plus the
label space. A table knows its size and, when that is cheap, its labels, and makes a
`tf.data.Dataset` of `(image uint8 [H, W, C], label)` for any subset of its example indices.
`splits.load_splits` then carves validation data and subsamples on indices,
so every source gets the same seeded, stratified selection.

In-memory sources (`fashion_mnist`, `npz:`, `medmnist:`) hold numpy arrays; file sources
(`folder:`, `csv:`) hold paths and decode in the pipeline after one checking pass at load time
(so a corrupt file fails at once with its name, not deep inside training) and live in
`files.py`; `dicom:` (a folder or CSV of DICOM files, via pydicom) in `dicom_reader.py`;
`tfds:` lives in `tfds_reader.py`. `synthetic[:CLASSES]` (generated, learnable
squares for tests and smoke runs) is made by `splits.load_splits` at the sizes it is asked for.
"""

from __future__ import annotations

import functools
import gzip
import os
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
from absl import logging

from efficientnet_search.data import files as data_files
from efficientnet_search.data import tfds_reader as data_tfds
from efficientnet_search.data.dicom_reader import read_dicom_source
from efficientnet_search.data.records import Source, array_table

# The one list of data source URIs; `config.DataConfig` checks a source against it.
SCHEMES = ("npz", "folder", "csv", "dicom", "tfds", "medmnist", "synthetic")
ACCEPTED_URIS = (
    "fashion_mnist | npz:PATH | folder:PATH | csv:PATH | dicom:PATH | tfds:NAME[:SPLIT] | "
    "medmnist:NAME | synthetic[:CLASSES]"
)
SYNTHETIC_CLASSES = 3  # `synthetic` alone; generated squares (synthetic.py), 2 to 16 classes
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
# 2D MedMNIST v2 datasets; each also exists as NAME_64/_128/_224 (MedMNIST+), same record.
MEDMNIST_2D = (
    "pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist",
    "breastmnist", "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist",
)  # fmt: skip
MEDMNIST_URL = "https://zenodo.org/records/10519652/files/{name}.npz?download=1"
DEFAULT_MEDMNIST_DIR = "~/.medmnist"  # the `medmnist` package's own default root


def parse_uri(uri: str) -> tuple[str, str]:
    """Splits a source URI into (scheme, rest) after checking it against `ACCEPTED_URIS`.

    Only the syntax is checked (no file is opened), so a config can be validated at once.
    `fashion_mnist` gives ("fashion_mnist", ""); `synthetic` gives ("synthetic", "3").

    Raises:
        ValueError: naming the URI and the accepted forms.
    """
    if not isinstance(uri, str):
        raise ValueError(f"data source must be a URI string, got {uri!r}; accepted: "
                         f"{ACCEPTED_URIS}")  # fmt: skip
    if uri == "fashion_mnist":
        return uri, ""
    if uri == "synthetic":
        return uri, str(SYNTHETIC_CLASSES)
    scheme, sep, rest = uri.partition(":")
    if not (sep and rest.strip() and scheme in SCHEMES):
        raise ValueError(f"unknown data source {uri!r}; accepted: {ACCEPTED_URIS}")
    if scheme == "synthetic" and not (rest.isdigit() and 2 <= int(rest) <= 16):
        raise ValueError(
            f"data source {uri!r}: synthetic:CLASSES takes a class count in [2, 16], got {rest!r}"
        )
    return scheme, rest


def read_source(
    uri: str,
    *,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    download: bool | None = None,
) -> Source:
    """Reads the file-backed source named by `uri`; see `ACCEPTED_URIS`.

    `synthetic[:CLASSES]` is generated at the sizes asked for, so `splits.load_splits` makes
    it; here it is refused.
    """
    scheme, rest = parse_uri(uri)
    if scheme == "fashion_mnist":
        return read_fashion_mnist(data_dir, download=download is not False)
    if scheme == "npz":
        return read_npz(rest)
    if scheme == "medmnist":
        return read_medmnist(rest, data_dir, download=download is not False)
    if scheme in ("folder", "csv"):
        reader = data_files.read_folder if scheme == "folder" else data_files.read_csv
        return reader(rest)
    if scheme == "dicom":
        return read_dicom_source(rest)
    if scheme == "tfds":
        return data_tfds.read_tfds(
            rest,
            data_dir=data_dir,
            manual_dir=manual_dir,
            # Preparing from manual files needs no internet, so manual_dir allows it.
            download=bool(download) if download is not None else manual_dir is not None,
        )
    raise ValueError(f"data source {uri!r} is generated, not read: use splits.load_splits")


# ----------------------------------------------------------------------------- arrays


@functools.lru_cache(maxsize=8)  # a grid search loads the same files once per trial
def _read_idx(path: Path) -> np.ndarray:
    """Reads one idx file (the MNIST format: magic, dims as big-endian int32, uint8 data)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    images = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    images.flags.writeable = False  # shared by the cache
    return images


def read_fashion_mnist(data_dir: str | None = None, *, download: bool = True) -> Source:
    """Fashion-MNIST from idx files (Debian's `dataset-fashion-mnist`) or Keras' download."""
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")  # fmt: skip
    folders = [Path(data_dir)] if data_dir else []
    folders.append(FASHION_MNIST_DIR)
    for folder in folders:
        if all((folder / n).is_file() for n in names):
            x_train, y_train, x_test, y_test = (_read_idx(folder / n) for n in names)
            break
    else:
        if not download:
            raise FileNotFoundError(_fashion_missing("downloads are off"))
        try:
            import keras

            (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
        except Exception as error:  # noqa: BLE001 - any download failure means "not here"
            raise FileNotFoundError(_fashion_missing(f"download failed: {error}")) from None
    return Source(
        train=array_table(x_train[..., None], y_train.astype(np.int32)),
        val=None,
        test=array_table(x_test[..., None], y_test.astype(np.int32)),
        num_classes=10,
        multi_label=False,
        channels=1,
        class_names=FASHION_MNIST_CLASSES,
    )


def _fashion_missing(why: str) -> str:
    return (
        f"Fashion-MNIST not found in {str(FASHION_MNIST_DIR)!r} ({why}); install it with "
        "`apt-get install dataset-fashion-mnist` or run once with internet access"
    )


def read_npz(path: str) -> Source:
    """A MedMNIST-layout `.npz`: `train_images`, `train_labels`, optional `val_*`, `test_*`.

    Images are [N, H, W] (grayscale) or [N, H, W, C] with C in {1, 3}. Labels are [N] or
    [N, 1] class ids, or [N, K] 0/1 columns (multi-label, as ChestMNIST's 14). An optional
    `class_names` array names the classes.
    """
    file = Path(path).expanduser()
    arrays = _read_npz_arrays(file)
    if "train_images" not in arrays or "train_labels" not in arrays:
        raise ValueError(
            f"npz file {str(file)!r} lacks 'train_images'/'train_labels' (has "
            f"{sorted(arrays)}); expected the MedMNIST layout train_/val_/test_ images and labels"
        )
    splits = {}
    for split in ("train", "val", "test"):
        if f"{split}_images" in arrays:
            images = _check_images(arrays[f"{split}_images"], f"{split}_images", file)
            labels = _check_labels(arrays.get(f"{split}_labels"), len(images), split, file)
            splits[split] = (images, labels)
    multi_label = splits["train"][1].ndim == 2
    class_names = _npz_class_names(arrays, splits["train"][1], multi_label, file)
    for split, (_, labels) in splits.items():
        _check_label_range(labels, len(class_names), multi_label, f"{split}_labels", file,
                           named="class_names" in arrays)
    channels = {images.shape[-1] for images, _ in splits.values()}
    if len(channels) != 1:
        raise ValueError(f"npz file {str(file)!r}: splits disagree on channels {channels}")
    return Source(
        train=array_table(*splits["train"]),
        val=array_table(*splits["val"]) if "val" in splits else None,
        test=array_table(*splits["test"]) if "test" in splits else None,
        num_classes=len(class_names),
        multi_label=multi_label,
        channels=channels.pop(),
        class_names=class_names,
    )


def _read_npz_arrays(file: Path) -> dict[str, np.ndarray]:
    """Every array of an `.npz` archive, with one-line errors for files that are not one."""
    if not file.is_file():
        relative = "" if file.is_absolute() else f" (relative to the working directory "\
            f"{os.getcwd()!r})"
        raise FileNotFoundError(
            f"npz file not found: {str(file)!r}{relative}; MedMNIST files come from "
            "https://zenodo.org/records/10519652 (or use medmnist:NAME)"
        )
    # An npz is a zip of .npy files (numpy.savez); anything else would reach numpy's loader,
    # whose message for a text file talks of pickled data.
    if not zipfile.is_zipfile(file):
        with open(file, "rb") as f:
            head = f.read(8)
        kind = ("a single .npy array" if head.startswith(b"\x93NUMPY")
                else "a damaged or truncated zip file" if head.startswith(b"PK")
                else f"it starts {head!r}")
        raise ValueError(
            f"{str(file)!r} is not an npz archive ({kind}); write one with "
            "numpy.savez(path, train_images=..., train_labels=...)"
        )
    try:
        with np.load(file, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise ValueError(f"npz file {str(file)!r} cannot be read: {reason}") from None


def _check_images(images: np.ndarray, key: str, file: Path) -> np.ndarray:
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"npz file {str(file)!r}: {key!r} has shape {images.shape}; expected [N, H, W] or "
            "[N, H, W, C] with C 1 or 3"
        )
    if not (np.issubdtype(images.dtype, np.number) or images.dtype == np.bool_):
        raise ValueError(f"npz file {str(file)!r}: {key!r} holds {images.dtype} values, "
                         "not pixels; expected uint8 or numbers in [0, 255]")  # fmt: skip
    if images.dtype != np.uint8:
        if np.issubdtype(images.dtype, np.inexact):
            bad = int(images.size - np.count_nonzero(np.isfinite(images)))
            if bad:
                raise ValueError(
                    f"npz file {str(file)!r}: {key!r} has {bad} non-finite pixels (NaN or "
                    f"inf) of {images.size}; replace or drop those images"
                )
        if images.size and (images.min() < 0 or images.max() > 255):
            raise ValueError(
                f"npz file {str(file)!r}: {key!r} has pixels in [{images.min():g}, "
                f"{images.max():g}], outside [0, 255]; scale them to 0-255"
            )
        images = np.round(images).astype(np.uint8)
    return images


def _npz_class_names(
    arrays: dict[str, np.ndarray], train_labels: np.ndarray, multi_label: bool, file: Path
) -> tuple[str, ...]:
    """`class_names` if stored, else one name per label column or per class id up to the max."""
    if "class_names" in arrays:
        names = tuple(str(n) for n in np.atleast_1d(arrays["class_names"]))
        if not names:
            raise ValueError(f"npz file {str(file)!r}: 'class_names' is empty; store one name "
                             "per class or leave the key out")  # fmt: skip
        return names
    if multi_label:
        return tuple(str(i) for i in range(train_labels.shape[1]))
    if not train_labels.size:
        raise ValueError(f"npz file {str(file)!r}: 'train_labels' is empty, so the classes "
                         "cannot be known; give training examples")  # fmt: skip
    if train_labels.min() < 0:
        raise ValueError(
            f"npz file {str(file)!r}: 'train_labels' has label {train_labels.min()}: class "
            "ids must be 0, 1, ..., K-1 (the number of classes K is the largest id + 1)"
        )
    return tuple(str(i) for i in range(int(train_labels.max()) + 1))


def _check_labels(labels: np.ndarray | None, count: int, split: str, file: Path) -> np.ndarray:
    key = f"{split}_labels"
    if labels is None:
        raise ValueError(f"npz file {str(file)!r} has '{split}_images' but no {key!r}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim not in (1, 2) or len(labels) != count:
        raise ValueError(
            f"npz file {str(file)!r}: {key!r} has shape {labels.shape}; expected [{count}], "
            f"[{count}, 1] or [{count}, num_labels]"
        )
    if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == np.bool_):
        raise ValueError(f"npz file {str(file)!r}: {key!r} holds {labels.dtype} values; "
                         "expected integer class ids (or 0/1 columns)")  # fmt: skip
    if labels.size and not np.all(np.equal(np.mod(labels, 1), 0)):
        raise ValueError(f"npz file {str(file)!r}: {key!r} holds non-integer labels")
    return labels.astype(np.float32 if labels.ndim == 2 else np.int32)


def _check_label_range(
    labels: np.ndarray, num_classes: int, multi_label: bool, key: str, file: Path, named: bool
) -> None:
    if multi_label != (labels.ndim == 2) or (multi_label and labels.shape[1] != num_classes):
        raise ValueError(
            f"npz file {str(file)!r}: {key!r} has shape {labels.shape}, unlike train_labels"
        )
    if multi_label:
        bad = labels[(labels != 0) & (labels != 1)]
        accepted = "0 or 1 in every multi-label column"
    else:
        bad = labels[(labels < 0) | (labels >= num_classes)]
        where = "named by 'class_names'" if named else "from the largest train label"
        accepted = f"class ids 0 to {num_classes - 1} ({num_classes} classes, {where})"
    if bad.size:
        raise ValueError(
            f"npz file {str(file)!r}: {key!r} has label {bad.flat[0]:g} out of range; "
            f"accepted: {accepted}"
        )


def read_medmnist(name: str, data_dir: str | None, *, download: bool = True) -> Source:
    """`medmnist:NAME`: `data_dir/NAME.npz` (default `~/.medmnist`), downloaded when missing."""
    folder = Path(data_dir or DEFAULT_MEDMNIST_DIR).expanduser()
    file = folder / f"{name}.npz"
    if not file.is_file():
        base = name.rsplit("_", 1)[0] if name.rsplit("_", 1)[-1] in ("64", "128", "224") else name
        url = MEDMNIST_URL.format(name=name)
        if base not in MEDMNIST_2D:
            why = f"{name!r} is not a 2D MedMNIST name ({', '.join(MEDMNIST_2D)}[_64|_128|_224])"
        elif not download:
            why = "downloads are off"
        else:
            why = _download(url, file)
        if why:
            raise FileNotFoundError(
                f"medmnist:{name}: no local copy at {str(file)!r} and {why}; put {name}.npz "
                f"there (from {url}), pass data_dir=FOLDER, or use npz:PATH"
            )
    return read_npz(str(file))


def _download(url: str, file: Path) -> str:
    """Downloads `url` to `file` atomically; returns '' on success, else why it failed."""
    logging.info("downloading %s to %s", url, file)
    partial = file.with_suffix(".npz.part")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(partial, file)
    except OSError as error:
        partial.unlink(missing_ok=True)
        return f"the download from {url} failed ({error})"
    return ""
