"""EfficientNetV2: parity with keras.applications (parameters, multiply-adds, outputs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from efficientnet_search import EfficientNetV2B0, EfficientNetV2S, build_model
from efficientnet_search.arch.cost import model_cost, spec_cost
from efficientnet_search.arch.model import resolve_spec
from efficientnet_search.arch.scaling import V2_PAPER_COSTS, V2_VARIANTS
from efficientnet_search.arch.weights import load_reference_weights
from tests.arch.parity_utils import REFERENCE_V2, images, randomize, reference_model

_SLOW = pytest.mark.slow
_BIG = [pytest.param("v2-m", marks=_SLOW), pytest.param("v2-l", marks=_SLOW)]


def _trainable(model) -> int:
    return sum(math.prod(w.shape) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "variant", ["v2-b0", pytest.param("v2-b3", marks=_SLOW), pytest.param("v2-s", marks=_SLOW),
                *_BIG])
def test_params_and_multiply_adds_equal_keras_applications(variant):
    # Both of our routes (analytic and walking the built model) against the reference model.
    reference = model_cost(reference_model(variant))
    ours = build_model(variant)
    assert spec_cost(resolve_spec(variant)).macs == model_cost(ours).macs == reference.macs
    assert (spec_cost(resolve_spec(variant)).trainable_params == _trainable(ours)
            == reference.trainable_params)
    ours_layers = {layer.name for layer in ours.layers if layer.weights}
    ref_layers = {layer.name for layer in reference_model(variant).layers
                  if layer.weights and not layer.name.startswith("normalization")}
    assert ours_layers == ref_layers


@pytest.mark.parametrize("variant", list(V2_VARIANTS))
def test_cost_table_agrees_with_paper_table7(variant):
    # Within 1%: the paper rounds to 0.1M / 0.1B (L: 118.5M counted, 119.5M printed).
    cost = spec_cost(resolve_spec(variant))
    paper_params, paper_macs = V2_PAPER_COSTS[variant]
    assert cost.trainable_params == pytest.approx(paper_params, rel=0.01)
    assert cost.macs == pytest.approx(paper_macs, rel=0.01)


@pytest.mark.parametrize(
    "variant", ["v2-b0", pytest.param("v2-s", marks=_SLOW),
                *[pytest.param(f"v2-b{i}", marks=_SLOW) for i in (1, 2, 3)], *_BIG])
def test_outputs_equal_reference_after_weight_transfer(variant):
    # Odd size: strided "same" padding must match; S/M/L also check the x/128 - 1 input.
    shape = (65, 65, 3)
    reference = randomize(REFERENCE_V2[variant](weights=None, input_shape=shape,
                                                 classifier_activation=None))
    ours = load_reference_weights(
        build_model(variant, input_shape=shape, classifier_activation=None), reference)
    x = images(65, count=2)
    np.testing.assert_allclose(ours(x, training=False), reference(x, training=False),
                               atol=1e-4, rtol=1e-4)


def test_fused_blocks_are_named_like_keras_and_v2_stem_follows_first_stage():
    model = build_model("v2-s", input_shape=(64, 64, 3))
    names = {layer.name for layer in model.layers}
    # Stage 1: fused, expansion 1 (the 3x3 is the projection, with activation), residual.
    assert {"block1a_project_conv", "block1a_project_activation", "block1b_add"} <= names
    assert "block1a_expand_conv" not in names and "block1a_dwconv2" not in names
    assert {"block2a_expand_conv", "block2a_project_conv"} <= names  # fused, expansion 4
    assert {"block4a_dwconv2", "block4a_se_reduce", "block4a_expand_conv"} <= names
    assert model.get_layer("stem_conv").filters == 24
    assert model.get_layer("block2a_expand_conv").kernel_size == (3, 3)
    assert model.get_layer("block2a_expand_conv").strides == (2, 2)


def test_wrappers_take_keras_arguments():
    model = EfficientNetV2B0(include_top=False, input_shape=(64, 64, 3), pooling="avg")
    assert model.output_shape == (None, 1280) and model.name == "efficientnetv2-b0"
    small = EfficientNetV2S(classes=5, include_preprocessing=False, input_shape=(33, 33, 3))
    assert small.output_shape == (None, 5)
    assert not any(layer.name.startswith("rescaling") for layer in small.layers)
    spec = resolve_spec("efficientnetv2-s")
    assert spec.scaling.resolution == 384 and spec.preprocessing == "unit"
    assert resolve_spec("V2B2").preprocessing == "imagenet"


def test_v2_rounding_drops_the_ten_percent_guard():
    # 34 channels at width 0.35 are 11.9: V1 rounds up to 16 (8 would be 33% fewer), V2
    # (automl round_filters) to the nearest multiple, 8.
    v1 = build_model(width=0.35, depth=0.25, resolution=32, blocks=["r1_k3_s11_e1_i34_o34"])
    v2 = build_model(width=0.35, depth=0.25, resolution=32, blocks=["r1_k3_s1_e1_i34_o34_c1"])
    assert v1.get_layer("block1a_project_conv").filters == 16
    assert v2.get_layer("block1a_project_conv").filters == 8
    assert v2.get_layer("stem_conv").filters == 8  # the first stage's input, not 32
