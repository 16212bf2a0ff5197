"""`dicom:PATH`: DICOM images (what hospitals store) as a `records.Source`, through pydicom.

PATH is a folder with one subfolder per class (`PATH/<class>/*.dcm`, or
`PATH/<split>/<class>/*.dcm` as for `folder:`; files ending `.dcm`, `.dicom` or without a
suffix, as PACS exports often are) or a CSV of path,label[,split] rows (as for `csv:`).

Each file becomes a uint8 image the way a viewer would show it (DICOM PS3.3 C.11 and
C.7.6.3.1.2, the grayscale pipeline): the Modality LUT (Rescale Slope/Intercept, or a Modality
LUT Sequence) maps stored values to modality units (Hounsfield units for CT); the VOI LUT (a
VOI LUT Sequence, else the first Window Center/Width pair, the file's default view) picks
the range to see (pydicom's windowing; the LUT lookup is ours, see `_voi_lookup`); that
range is mapped linearly onto 0-255. Without any VOI transform the
image's own min-max range is used. MONOCHROME1 (minimum shown white, as many CR/DX
radiographs) is inverted so that every image reads MONOCHROME2. Colour files (RGB, YCbCr,
palette) come out RGB. Multi-frame files are refused: store one frame per file.

Every file is decoded once at load time, so a file that is not DICOM, has no pixel data or
cannot be decoded fails at once with one line naming it; the pipeline decodes again lazily.
pydicom is the optional extra `pip install efficientnet_search[dicom]`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from efficientnet_search.data import files as data_files
from efficientnet_search.data.records import Source, Table, path_table

DICOM_EXTENSIONS = (".dcm", ".dicom", "")
_INSTALL = "pip install 'efficientnet_search[dicom]' (or pip install pydicom)"


def read_dicom_source(path: str) -> Source:
    """`dicom:PATH`: a class-per-subfolder tree of DICOM files, or a CSV listing them."""
    _pydicom()  # a missing extra fails before any listing
    if Path(path).expanduser().is_file():
        groups, class_names, multi_label = data_files.list_csv(path)
    else:
        groups, class_names = data_files.list_folder(path, DICOM_EXTENSIONS)
        multi_label = False
    channels = check_dicom([p for paths, _ in groups.values() for p in paths])
    tables = {split: dicom_table(paths, labels, channels)
              for split, (paths, labels) in groups.items()}
    return Source(tables["train"], tables.get("val"), tables.get("test"), len(class_names),
                  multi_label, channels, class_names)  # fmt: skip


def read_dicom_image(path: str | Path) -> np.ndarray:
    """One DICOM file as the displayed image: uint8 [H, W, 1] (grayscale) or [H, W, 3].

    Raises:
      ValueError: one line naming the file, when it is not DICOM, has no pixel data, holds
        several frames or its pixel data cannot be decoded.
    """
    pydicom = _pydicom()
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_windowing

    path = str(path)
    try:
        ds = pydicom.dcmread(path)
    except pydicom.errors.InvalidDicomError:
        raise ValueError(f"{path!r} is not a DICOM file (no DICM header)") from None
    except Exception as error:  # noqa: BLE001 - any parse failure: name the file, one line
        raise ValueError(f"{path!r} cannot be read as DICOM: {_first_line(error)}") from None
    if "PixelData" not in ds:
        kind = ds.get("Modality") or ds.get("SOPClassUID", "unknown")
        raise ValueError(f"DICOM file {path!r} has no pixel data (modality/class {kind!s}); "
                         "only image files can be used")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ValueError(f"DICOM file {path!r} holds {frames} frames; store one image per file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns on benign header quirks
            pixels = ds.pixel_array
    except Exception as error:  # noqa: BLE001 - decoder missing or corrupt data
        syntax = getattr(getattr(ds.get("file_meta"), "TransferSyntaxUID", None), "name", "?")
        raise ValueError(f"DICOM file {path!r} ({syntax}): cannot decode pixel data: "
                         f"{_first_line(error)}") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        return _to_uint8_range(apply_color_lut(pixels, ds), *_bits_range(ds, palette=True))
    if int(ds.get("SamplesPerPixel", 1)) == 3:  # RGB (pydicom converts YCbCr to RGB)
        return _to_uint8_range(pixels, *_bits_range(ds))
    values = apply_modality_lut(pixels, ds)
    sequence = ds.get("VOILUTSequence")
    if sequence and sequence[0].get("LUTDescriptor") and sequence[0].get("LUTData"):
        values, (low, high) = _voi_lookup(values, sequence[0], ds), _lut_range(sequence[0])
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        low, high = _window_range(ds)
        values = apply_windowing(values, ds)
    else:
        low, high = float(np.min(values)), float(np.max(values))
    image = _to_uint8_range(values[..., None], low, high)
    return 255 - image if photometric == "MONOCHROME1" else image


def check_dicom(paths: Sequence[str]) -> int:
    """Decodes every file once; returns the channel count to use (1 if all are grayscale)."""
    channels = {read_dicom_image(p).shape[-1] for p in paths}
    return 1 if channels <= {1} else 3


def dicom_table(paths: Sequence[str], labels: np.ndarray, channels: int) -> Table:
    """A table over DICOM files decoded lazily (pydicom in a tf.numpy_function)."""
    def load(path: bytes) -> np.ndarray:
        image = read_dicom_image(path.decode())
        return np.repeat(image, channels, axis=-1) if image.shape[-1] < channels else image

    def decode(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.numpy_function(load, [path], tf.uint8, stateful=False)
        return tf.ensure_shape(image, [None, None, channels]), label

    return path_table(paths, labels, decode)


def _voi_lookup(values: np.ndarray, item, ds) -> np.ndarray:
    """A VOI LUT Sequence item applied (PS3.3 C.11.2.1.1): values below the first mapped one
    take the first entry, values past the end the last. Written here because pydicom 3.0's
    apply_voi indexes through an array of the LUT's output type, so an 8-bit LUT with more
    than 256 entries wraps around."""
    entries, first, _ = (int(v) for v in item.LUTDescriptor)
    entries = entries or 2**16
    data = item.LUTData
    if isinstance(data, bytes):  # OW: 16-bit words in the file's byte order
        little = ds.original_encoding[1] is not False
        lut = np.frombuffer(data, dtype="<u2" if little else ">u2")[:entries]
    else:
        lut = np.asarray(data, dtype=np.int64)
    index = np.clip(np.round(np.asarray(values, np.float64)).astype(np.int64) - first, 0,
                    len(lut) - 1)
    return lut[index].astype(np.float64)


def _lut_range(item) -> tuple[float, float]:
    """A VOI LUT outputs 0 .. 2^bits - 1 (bits: its LUT Descriptor's third value)."""
    return 0.0, float(2 ** int(item.LUTDescriptor[2]) - 1)


def _window_range(ds) -> tuple[float, float]:
    """The output range of pydicom's windowing: what it maps values below and above the
    window to, found by passing it the extremes (it depends on bits stored and rescaling)."""
    from pydicom.pixels import apply_windowing

    with np.errstate(over="ignore"):  # the sigmoid VOI function at the extremes
        extremes = apply_windowing(np.array([-1e300, 1e300]), ds)
    return float(extremes.min()), float(extremes.max())


def _bits_range(ds, palette: bool = False) -> tuple[float, float]:
    """0 .. the largest stored value (colour and palette data are unsigned)."""
    if palette:  # palette entries are 8 or 16 bits (PS3.3 C.7.6.3.1.5)
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    else:
        bits = int(ds.get("BitsStored", 8))
    return 0.0, float(2**bits - 1)


def _to_uint8_range(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Maps [low, high] linearly onto 0..255 (clipped, rounded), as uint8 [H, W, C]."""
    values = np.asarray(values, dtype=np.float64)
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.clip(np.round((values - low) * scale), 0, 255).astype(np.uint8)


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise ImportError(f"dicom: sources need pydicom: {_INSTALL}") from None
    return pydicom
