"""Loading the reference weight files (the legacy .h5 layout Keras publishes), hash checks.

Files written here get names other than the published ones (`efficientnetb0.h5`), which are
checked against Keras' published hashes before they are read.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

from efficientnet_search import build_model
from efficientnet_search.arch.model import variant_signatures
from efficientnet_search.arch.weights import KERAS_H5_MD5, load_reference_weights
from tests.arch.parity_utils import REFERENCE, REFERENCE_V2, images, randomize


def _write_reference_file(model, path):
    """Writes weights exactly as the published efficientnet*.h5 files are laid out."""
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


@pytest.fixture(scope="module")
def b0_reference():
    return randomize(REFERENCE["b0"](weights=None))


def test_build_with_weight_file_equals_reference(tmp_path, b0_reference):
    path = _write_reference_file(b0_reference, tmp_path / "b0_random.h5")
    ours = build_model("b0", weights=str(path))
    x = images(224)
    np.testing.assert_allclose(ours(x, training=False), b0_reference(x, training=False),
                               atol=1e-4)


def test_notop_file_loads_into_headless_model(tmp_path):
    shape = (64, 64, 3)
    reference = randomize(REFERENCE["b0"](weights=None, include_top=False, input_shape=shape))
    path = _write_reference_file(reference, tmp_path / "b0_random_notop.h5")
    ours = build_model("b0", include_top=False, input_shape=shape, weights=str(path))
    x = images(64)
    np.testing.assert_allclose(ours(x, training=False), reference(x, training=False), atol=1e-4)
    with pytest.raises(ValueError, match="include_top=False"):
        build_model("b0", input_shape=shape, weights=str(path))


def test_file_of_another_variant_says_which_it_fits(tmp_path, b0_reference):
    path = _write_reference_file(b0_reference, tmp_path / "weights.h5")
    with pytest.raises(ValueError, match="fit EfficientNet-B0.*model is EfficientNet-B1"):
        build_model("b1", weights=str(path))


def test_classifier_with_other_class_count_is_explained(b0_reference):
    with pytest.raises(ValueError, match="1000 classes, the model has 10"):
        load_reference_weights(build_model("b0", num_classes=10), b0_reference)


def test_missing_file_and_wrong_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="keras-applications"):
        build_model("b0", weights=str(tmp_path / "nope.h5"))
    bad = tmp_path / "plain.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("x", data=[1])
    with pytest.raises(ValueError, match="not a Keras HDF5 weight file"):
        build_model("b0", weights=str(bad))


def test_variant_signatures_are_distinct():
    signatures = variant_signatures()
    assert len(set(signatures.values())) == len(signatures) == 20
    assert signatures["b0"] == (32, 1280, 16, 320, True, 0)
    assert signatures["b7"] == (64, 2560, 55, 640, True, 0)
    assert signatures["lite0"] == (32, 1280, 16, 320, False, 0)
    assert signatures["v2-s"] == (24, 1280, 40, 256, True, 10)


@pytest.fixture(scope="module")
def v2_b0_notop_file(tmp_path_factory):
    shape = (65, 65, 3)
    reference = randomize(REFERENCE_V2["v2-b0"](weights=None, include_top=False,
                                                input_shape=shape))
    path = tmp_path_factory.mktemp("v2") / "efficientnetv2-b0_notop.h5"
    return _write_reference_file(reference, path), reference


def test_published_v2_layout_loads_by_layer_name(v2_b0_notop_file):
    path, reference = v2_b0_notop_file
    ours = build_model("v2-b0", include_top=False, input_shape=(65, 65, 3), weights=str(path))
    x = images(65)
    np.testing.assert_allclose(ours(x, training=False), reference(x, training=False),
                               atol=1e-4, rtol=1e-4)


def test_v2_file_into_v1_model_and_back_names_both(v2_b0_notop_file, tmp_path):
    path, _ = v2_b0_notop_file
    with pytest.raises(ValueError, match=r"fit EfficientNetV2-B0 \(stem 32, head 1280, 21 "
                                         r"blocks \(5 fused\).*but the model is EfficientNet-B0"):
        build_model("b0", include_top=False, input_shape=(65, 65, 3), weights=str(path))
    v1 = randomize(REFERENCE["b0"](weights=None, include_top=False, input_shape=(65, 65, 3)))
    v1_path = _write_reference_file(v1, tmp_path / "random_b0_notop.h5")
    with pytest.raises(ValueError, match="fit EfficientNet-B0 .*model is EfficientNetV2-B0"):
        build_model("v2-b0", include_top=False, input_shape=(65, 65, 3), weights=str(v1_path))


def test_damaged_published_h5_is_refused_naming_the_file(tmp_path):
    bad = tmp_path / "efficientnetb0.h5"
    bad.write_bytes(b"not the published file")
    tiny = build_model(width=0.25, depth=0.25, resolution=32, include_top=False)
    with pytest.raises(ValueError, match=f"efficientnetb0.h5.*md5.*{KERAS_H5_MD5['b0'][0]}"):
        load_reference_weights(tiny, bad)


def test_imagenet_b0_fetches_keras_published_file_with_its_hash(tmp_path, monkeypatch):
    requests = []

    def fake_get_file(fname, origin, cache_subdir, file_hash):
        requests.append((fname, origin, cache_subdir, file_hash))
        path = tmp_path / fname
        path.write_bytes(b"a cached file damaged after its download")
        return str(path)

    monkeypatch.setattr("keras.utils.get_file", fake_get_file)
    with pytest.raises(ValueError, match="efficientnetb0_notop.h5.* failed its md5 check"):
        build_model("b0", include_top=False, weights="imagenet")
    assert requests == [(
        "efficientnetb0_notop.h5",
        "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
        "models", KERAS_H5_MD5["b0"][1],
    )]
