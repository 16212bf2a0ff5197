"""The model builder: reference parity (parameters, outputs), saving, mixed precision."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from efficientnet_search import EfficientNetB0, build_model
from efficientnet_search.arch.weights import load_reference_weights
from tests.arch.parity_utils import (
    REFERENCE,
    images,
    our_model,
    randomize,
    reference_model,
    v1_params,
)


def _trainable(model: keras.Model) -> int:
    return sum(math.prod(w.shape) for w in model.trainable_weights)


@pytest.mark.parametrize("variant", v1_params(REFERENCE))
def test_trainable_parameters_equal_keras_applications(variant):
    ours, reference = our_model(variant), reference_model(variant)
    assert _trainable(ours) == _trainable(reference)
    # Ours holds the ImageNet normalization as constants, the reference as 7 weights.
    assert ours.count_params() == reference.count_params() - 7
    ours_layers = {layer.name for layer in ours.layers if layer.weights}
    ref_layers = {layer.name for layer in reference.layers
                  if layer.weights and not layer.name.startswith("normalization")}
    assert ours_layers == ref_layers


@pytest.mark.parametrize("variant", ["b0", "b1"])
def test_outputs_equal_reference_at_native_resolution(variant):
    reference = randomize(REFERENCE[variant](weights=None))
    ours = load_reference_weights(build_model(variant), reference)
    x = images(ours.input_shape[1])
    np.testing.assert_allclose(ours(x, training=False), reference(x, training=False), atol=1e-4)


@pytest.mark.parametrize("variant", v1_params(["b2", "b3", "b4", "b5", "b6", "b7"]))
def test_outputs_equal_reference_at_small_resolution(variant):
    # Odd size on purpose: strided "same" padding must match the reference's correct_pad.
    shape = (65, 65, 3)
    reference = randomize(REFERENCE[variant](weights=None, include_top=False, input_shape=shape))
    ours = load_reference_weights(build_model(variant, include_top=False, input_shape=shape),
                                  reference)
    x = images(65, count=1)
    np.testing.assert_allclose(ours(x, training=False), reference(x, training=False),
                               atol=1e-4, rtol=1e-4)


def test_layer_names_follow_keras_applications():
    names = [layer.name for layer in build_model("b0").layers]
    for expected in ("stem_conv", "block1a_dwconv", "block2b_se_reduce", "block2b_expand_conv",
                     "block7a_project_bn", "top_conv", "avg_pool", "predictions"):
        assert expected in names


def test_custom_coefficients_and_baseline():
    model = build_model(width=0.25, depth=1.0, resolution=48, num_classes=7,
                        blocks=["r1_k3_s11_e1_i32_o16_se0.25", "r2_k5_s22_e6_i16_o24_noskip"])
    assert model.input_shape == (None, 48, 48, 3)
    assert model.output_shape == (None, 7)
    names = [layer.name for layer in model.layers]
    assert "block2b_dwconv" in names and "block2b_add" not in names  # noskip stage
    assert "block1a_add" in names  # 32 and 16 channels both round to 8 at width 0.25


def test_unknown_variant_lists_valid_names():
    with pytest.raises(ValueError, match="valid variants: b0"):
        build_model("b9")


def test_pooling_and_no_top():
    model = build_model(width=0.25, depth=0.25, resolution=32, include_top=False, pooling="avg")
    assert model.output_shape == (None, 320)
    with pytest.raises(ValueError, match="pooling"):
        build_model(width=0.25, resolution=32, include_top=False, pooling="sum")


def test_wrapper_matches_keras_arguments():
    model = EfficientNetB0(include_top=False, input_shape=(64, 64, 3), pooling="max")
    assert model.output_shape == (None, 1280)
    assert EfficientNetB0(classes=10, classifier_activation=None).output_shape == (None, 10)


def test_save_and_load_keras_file_gives_identical_outputs(tmp_path):
    model = build_model(width=0.25, depth=0.5, resolution=32, num_classes=5)
    x = images(32, count=3)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert any(type(layer).__name__ == "StochasticDepth" for layer in loaded.layers)


def test_stochastic_depth_drops_whole_samples_only_in_training():
    from efficientnet_search.arch.layers import StochasticDepth

    layer = StochasticDepth(0.5, seed=3)
    x = np.ones((64, 4, 4, 2), "float32")
    np.testing.assert_array_equal(layer(x, training=False), x)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    per_sample = out.reshape(64, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert (per_sample.min(axis=1) == per_sample.max(axis=1)).all()
    assert 10 < (per_sample[:, 0] == 0).sum() < 54


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_outputs_float32(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_model(width=0.25, depth=0.25, resolution=32, num_classes=3)
        assert model.get_layer("stem_conv").compute_dtype != "float32"
        out = model(images(32), training=False)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        assert np.allclose(keras.ops.sum(out, axis=-1), 1.0, atol=1e-3)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_public_api_names_all_resolve():
    import importlib

    import efficientnet_search

    for name in efficientnet_search.__all__:
        home = importlib.import_module(efficientnet_search._LAZY[name])
        assert getattr(efficientnet_search, name) is getattr(home, name), name
    assert efficientnet_search.EfficientNetB3.__name__ == "EfficientNetB3"
    assert set(efficientnet_search.__all__) <= set(dir(efficientnet_search))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        efficientnet_search.nope  # noqa: B018
