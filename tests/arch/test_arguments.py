"""keras.applications' arguments across every family: input_tensor, 1..N channels, pretrained
stems adapted to other channel counts."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from efficientnet_search import build_model
from efficientnet_search.arch.blocks import V2_BASE_BLOCK_STRINGS
from efficientnet_search.arch.model import IMAGENET_MEAN_RGB, normalization_statistics
from efficientnet_search.arch.weights import adapt_stem_kernel, load_reference_weights
from tests.arch.parity_utils import randomize

# Tiny members of each family (same code paths as the published ones, quick to build).
FAMILIES = {
    "v1": {"width": 0.25, "depth": 0.25},
    "v2": {"width": 0.25, "depth": 0.25, "blocks": V2_BASE_BLOCK_STRINGS},
    "lite": {"variant": "lite0", "width": 0.25, "depth": 0.25},  # ReLU6, no SE, (x - 127) / 128
}


def _tiny(family: str, **kwargs) -> keras.Model:
    return build_model(**FAMILIES[family], resolution=33, **kwargs)


def _pixels(channels: int, size: int = 33, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (2, size, size, channels)).astype("float32")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_input_tensor_is_used_as_the_model_input(family):
    source = keras.Input((41, 41, 3), name="images")
    shifted = keras.layers.Rescaling(1.0, offset=1.0)(source)  # a predecessor, as keras allows
    model = _tiny(family, input_tensor=shifted, num_classes=4)
    assert model.inputs[0] is source
    assert model.output_shape == (None, 4)
    with pytest.raises(ValueError, match="contradicts the input_tensor"):
        _tiny(family, input_tensor=source, input_shape=(33, 33, 3))
    with pytest.raises(ValueError, match="must be a Keras tensor"):
        _tiny(family, input_tensor=np.zeros((1, 33, 33, 3)))


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize(("include_top", "pooling"), [(True, None), (False, "avg"), (False, None)])
def test_any_channel_count_builds_without_weights(family, channels, include_top, pooling):
    model = _tiny(family, input_shape=(None, None, channels), include_top=include_top,
                  pooling=pooling, num_classes=3)
    out = keras.ops.convert_to_numpy(model(_pixels(channels), training=False))
    assert out.shape[0] == 2 and np.isfinite(out).all()
    assert model.get_layer("stem_conv").kernel.shape[2] == channels
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)]
    if family == "lite":  # one statistic for every channel: a Rescaling alone
        assert not norms
    else:
        assert norms[0].mean.shape[-1] == channels


@pytest.mark.parametrize("bad", [(33, 33, 0), (33, 33), (0, 33, 3), (33, 33, 2.5)])
def test_bad_input_shape_names_it(bad):
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, channels\)"):
        _tiny("v1", input_shape=bad)


def test_adapt_stem_kernel_follows_timm_rule():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 3, 8)).astype("float32")
    np.testing.assert_allclose(adapt_stem_kernel(kernel, 1)[:, :, 0], kernel.sum(axis=2),
                               rtol=1e-6)
    four = adapt_stem_kernel(kernel, 4)
    np.testing.assert_allclose(four, np.concatenate([kernel, kernel[:, :, :1]], 2) * 0.75)
    assert adapt_stem_kernel(kernel, 3) is kernel
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        adapt_stem_kernel(kernel, 0)


def test_normalization_reduced_to_match():
    mean, std = normalization_statistics(1)
    assert mean == pytest.approx((np.mean(IMAGENET_MEAN_RGB),))
    assert normalization_statistics(4)[0] == (*IMAGENET_MEAN_RGB, IMAGENET_MEAN_RGB[0])


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize(("channels", "copies"), [(1, 3), (6, 0.5)])
def test_pretrained_stem_adapted_gives_the_rgb_models_output(family, channels, copies):
    # Gray replicated into RGB equals the summed 1-channel stem; RGB given twice to the
    # 6-channel stem (kernels repeated, halved) equals the RGB model (normalization off).
    rgb = randomize(_tiny(family, include_preprocessing=False, classifier_activation=None))
    adapted = load_reference_weights(
        _tiny(family, include_preprocessing=False, classifier_activation=None,
              input_shape=(33, 33, channels)), rgb)
    if channels == 1:
        x_adapted = _pixels(1) / 255
        x_rgb = np.repeat(x_adapted, 3, axis=-1)
    else:
        x_rgb = _pixels(3) / 255
        x_adapted = np.concatenate([x_rgb, x_rgb], axis=-1)
    np.testing.assert_allclose(adapted(x_adapted, training=False), rgb(x_rgb, training=False),
                               atol=1e-4, rtol=1e-4)


@pytest.fixture
def channels_first():
    """keras' global image data format set to channels_first, restored afterwards."""
    before = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        yield
    finally:
        keras.config.set_image_data_format(before)


@pytest.mark.parametrize("constructor", ["EfficientNetB0", "EfficientNetV2B0",
                                         "EfficientNetLite0", "build_model"])
def test_channels_first_is_refused_by_every_builder_in_one_line(channels_first, constructor):
    # Before this check B0 failed with an unrelated shape error and V2B0 silently built a
    # network that took 224 for the channel count.
    import efficientnet_search

    with pytest.raises(ValueError) as err:
        getattr(efficientnet_search, constructor)(weights=None)
    text = str(err.value)
    assert len(text.splitlines()) == 1
    assert "channels_last" in text and "'channels_first'" in text
    assert 'keras.config.set_image_data_format("channels_last")' in text
