"""Feature-map lookup: the stem, each stage's output and the head, by stride and size."""

from __future__ import annotations

import keras
import pytest

from efficientnet_search.arch.features import feature_layers, gradcam_layer, top_features
from efficientnet_search.arch.model import build_model


def _tiny(resolution, **kwargs):
    return build_model(width=0.25, depth=0.25, resolution=resolution, include_top=False,
                       **kwargs)


def test_b0_maps_halve_at_the_strided_stages():
    layers = feature_layers(_tiny(64))
    assert [f.name for f in layers][0] == "stem_activation"
    assert layers[-1].name == "top_activation"
    # B0's stages 2, 3, 4 and 6 have stride 2 (Tan & Le 2019, Table 1).
    assert [f.stride for f in layers] == [2, 2, 4, 8, 16, 16, 32, 32, 32]
    assert [f.height for f in layers] == [32, 32, 16, 8, 4, 4, 2, 2, 2]
    assert [f.stage for f in layers] == list(range(9))


def test_gradcam_uses_the_deepest_map_with_seven_cells():
    assert gradcam_layer(_tiny(224)).name == "top_activation"  # 7x7, the paper's setting
    at_64 = gradcam_layer(_tiny(64))
    assert (at_64.stage, at_64.height, at_64.width, at_64.stride) == (3, 8, 8, 8)
    assert at_64.describe().endswith("(8x8 cells, stride 8)")


def test_any_input_size_needs_the_size_and_foreign_models_are_refused():
    model = _tiny(64, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match="takes any input size; pass input_size"):
        feature_layers(model)
    assert gradcam_layer(model, (96, 96)).height == 12
    tiny = gradcam_layer(model, (8, 8))  # every map under 7x7: the largest (deepest of ties)
    assert (tiny.name, tiny.height) == ("block1a_add", 4)
    assert top_features(model).name == "top_activation"
    other = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="c")])
    with pytest.raises(ValueError, match="no 'top_activation' layer"):
        feature_layers(other)
