"""Tests for data.dicom_reader on the sample files that pydicom ships (offline)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip(
    "pydicom", reason="pip install 'efficientnet_search[dicom]' (also in the test extra)")

from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402

from efficientnet_search.data import splits as data  # noqa: E402
from efficientnet_search.data.dicom_reader import read_dicom_image  # noqa: E402
from efficientnet_search.data.sources import read_source  # noqa: E402
from efficientnet_search.data.synthetic import synthetic_arrays, write_image_folder  # noqa: E402

CT = Path(get_testdata_file("CT_small.dcm"))  # rescale -1024 HU, no window
MR = Path(get_testdata_file("MR_small.dcm"))  # window 600/1600, no rescale
# A computed radiograph: MONOCHROME1, slope 0.684, intercept 200, window 1600/2800.
CR = CT.parent / "dicomdirtests" / "77654033" / "CR1" / "6154"
RGB = Path(get_testdata_file("SC_rgb_small_odd.dcm"))
NO_PIXELS = Path(get_testdata_file("rtplan.dcm"))


def _linear_window(values, center, width):
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR window onto 0..255, written out independently."""
    out = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.clip(np.round(out), 0, 255)


def test_ct_rescale_to_hounsfield_then_full_range():
    ds = pydicom.dcmread(CT)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    image = read_dicom_image(CT)
    assert image.dtype == np.uint8 and image.shape == (*hu.shape, 1)
    expected = np.round((hu - hu.min()) / (hu.max() - hu.min()) * 255)
    np.testing.assert_array_equal(image[..., 0], expected)


def test_mr_window_center_width_maps_the_window_onto_0_255():
    ds = pydicom.dcmread(MR)
    image = read_dicom_image(MR)[..., 0].astype(float)
    # The window's own output range is the stored one (16-bit signed), mapped onto 0..255.
    low, high = -(2**15), 2**15 - 1
    windowed = ((ds.pixel_array - 599.5) / 1599 + 0.5) * (high - low) + low
    windowed = np.where(ds.pixel_array <= 600 - 0.5 - 799.5, low,
                        np.where(ds.pixel_array > 600 - 0.5 + 799.5, high, windowed))
    expected = np.clip(np.round((windowed - low) / (high - low) * 255), 0, 255)
    np.testing.assert_array_equal(image, expected)
    assert image.max() > image.min()


def test_monochrome1_radiograph_is_rescaled_windowed_and_inverted(tmp_path):
    ds = pydicom.dcmread(CR)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    image = read_dicom_image(CR)[..., 0].astype(int)
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.save_as(tmp_path / "mono2.dcm")
    upright = read_dicom_image(tmp_path / "mono2.dcm")[..., 0].astype(int)
    np.testing.assert_array_equal(image, 255 - upright)
    # Rescale before the window: values in modality units, window 1600/2800, 12-bit range.
    ds = pydicom.dcmread(CR)
    units = ds.pixel_array * 0.684 + 200
    low, high = 200.0, (2**12 - 1) * 0.684 + 200
    window = np.clip(((units - 1599.5) / 2799 + 0.5), 0, 1) * (high - low) + low
    expected = np.round((window - low) / (high - low) * 255)
    np.testing.assert_array_equal(upright, expected)


def test_voi_lut_sequence_is_applied(tmp_path):
    ds = pydicom.dcmread(MR)
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 8])  # LUT Descriptor: 4096 entries from 0, 8 bits
    item.add_new(0x00283006, "US", [min(v // 8, 255) for v in range(4096)])  # LUT Data
    ds.VOILUTSequence = Sequence([item])
    del ds.WindowCenter, ds.WindowWidth
    ds.save_as(tmp_path / "lut.dcm")
    image = read_dicom_image(tmp_path / "lut.dcm")[..., 0]
    expected = np.minimum(np.clip(ds.pixel_array, 0, 4095) // 8, 255)
    np.testing.assert_array_equal(image, expected)


def test_colour_file_comes_out_rgb():
    image = read_dicom_image(RGB)
    assert image.shape == (3, 3, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, pydicom.dcmread(RGB).pixel_array)


def test_not_dicom_and_no_pixel_data_are_one_line_naming_the_file(tmp_path):
    fake = tmp_path / "scan.dcm"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(ValueError, match="is not a DICOM file") as error:
        read_dicom_image(fake)
    assert str(fake) in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ValueError, match="has no pixel data") as error:
        read_dicom_image(NO_PIXELS)
    assert str(NO_PIXELS) in str(error.value) and "\n" not in str(error.value)


def _class_tree(root: Path) -> Path:
    ct = sorted((CT.parent / "dicomdirtests" / "98892001" / "CT5N").iterdir())
    mr = sorted((CT.parent / "dicomdirtests" / "98892003" / "MR2").iterdir())
    for name, files in (("ct", ct), ("mr", mr)):
        (root / name).mkdir(parents=True)
        for i, file in enumerate(files):
            shutil.copy(file, root / name / (f"{i}.dcm" if i % 2 else f"{i}"))
    return root


def test_folder_source_feeds_the_pipeline(tmp_path):
    root = _class_tree(tmp_path / "tree")
    splits = data.load_splits(f"dicom:{root}", validation_fraction=0.25, seed=0)
    assert splits.class_names == ("ct", "mr") and splits.channels == 1
    assert splits.sizes["train"] + splits.sizes["val"] == 5 + 7
    pipe = data.make_pipeline(splits.train, resolution=32, batch_size=4, training=False)
    images, labels = next(iter(pipe))
    assert images.shape[1:] == (32, 32, 3) and set(labels.numpy()) <= {0, 1}
    assert 0.0 <= float(images.numpy().min()) < float(images.numpy().max()) <= 255.0


def test_csv_source_with_splits_and_a_bad_file_named(tmp_path):
    lines = ["path,label,split", f"{CT},ct,train", f"{MR},mr,train", f"{CR},cr,train",
             f"{get_testdata_file('MR_small_implicit.dcm')},mr,test"]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    source = read_source(f"dicom:{tmp_path / 'list.csv'}")
    assert source.class_names == ("cr", "ct", "mr") and source.channels == 1
    assert (source.train.size, source.test.size) == (3, 1)
    image, label = next(iter(source.test.to_dataset(None)))
    np.testing.assert_array_equal(image.numpy(), read_dicom_image(lines[-1].split(",")[0]))
    png = write_image_folder(tmp_path / "png", *synthetic_arrays(2, num_classes=2))
    bad = next(png.rglob("*.png"))
    (tmp_path / "bad.csv").write_text(f"path,label\n{CT},0\n{bad},1\n")
    with pytest.raises(ValueError, match="is not a DICOM file") as error:
        data.load_splits(f"dicom:{tmp_path / 'bad.csv'}")
    assert str(bad) in str(error.value)
