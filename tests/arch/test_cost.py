"""Parameter and multiply-add counts: reference values, both routes agree with the reference."""

from __future__ import annotations

import pytest

from efficientnet_search.arch.cost import measure_cost, model_cost, spec_cost
from efficientnet_search.arch.model import build_model, resolve_spec
from efficientnet_search.arch.scaling import PAPER_COSTS
from tests.arch.parity_utils import REFERENCE, our_model, reference_model, v1_params


def test_b0_multiply_adds_equal_the_reference_figure():
    assert spec_cost(resolve_spec("b0")).macs == 385_814_752
    assert model_cost(REFERENCE["b0"](weights=None)).macs == 385_814_752


@pytest.mark.parametrize("variant", v1_params(REFERENCE))
def test_every_variant_counts_like_keras_applications(variant):
    reference = model_cost(reference_model(variant))
    ours_built = model_cost(our_model(variant))
    ours_spec = spec_cost(resolve_spec(variant))
    assert ours_spec.macs == ours_built.macs == reference.macs
    assert ours_spec.trainable_params == ours_built.trainable_params == reference.trainable_params
    assert ours_spec.params == ours_built.params
    assert [s.macs for s in ours_spec.stages] == [s.macs for s in ours_built.stages]
    assert sum(s.params for s in ours_spec.stages) == ours_spec.params


@pytest.mark.parametrize("variant", ["b0", "b1", "b2", "b3", "b6"])
def test_agrees_with_paper_table(variant):
    # Within 2%: the paper's two-digit figures (B1 0.70B is 0.687B, B2 9.2M is 9.11M).
    cost = spec_cost(resolve_spec(variant))
    paper_params, paper_macs = PAPER_COSTS[variant]
    assert cost.trainable_params == pytest.approx(paper_params, rel=0.02)
    assert cost.macs == pytest.approx(paper_macs, rel=0.02)


def test_released_b4_b5_b7_exceed_the_paper_and_we_say_so():
    measured = {v: spec_cost(resolve_spec(v)).macs / 1e9 for v in ("b4", "b5", "b7")}
    assert measured["b4"] > 1.04 * PAPER_COSTS["b4"][1] / 1e9
    assert measured["b4"] == pytest.approx(4.39, abs=0.01)
    assert measured["b5"] == pytest.approx(10.27, abs=0.01)
    assert measured["b7"] == pytest.approx(37.75, abs=0.01)


def test_per_stage_breakdown_and_resolution():
    cost = spec_cost(resolve_spec("b0"))
    assert [s.name for s in cost.stages][:2] == ["stem", "stage1"]
    assert [s.resolution for s in cost.stages] == [112, 112, 56, 28, 14, 14, 7, 7, 7]
    assert cost.resolution == 224
    assert spec_cost(resolve_spec("b0"), resolution=112).macs < cost.macs / 3


def test_dynamic_input_size_is_refused():
    with pytest.raises(ValueError, match="fixed input size"):
        model_cost(build_model(width=0.25, include_top=False, input_shape=(None, None, 3)))


# One block at width 0.25, 32 px: stem 8 ch, block 8 -> 8 ch (no expansion), head 320 ch, and
# every convolution's output counted by hand at 16 x 16 after the stride-2 stem.
TINY = {"width": 0.25, "depth": 1.0, "resolution": 32, "num_classes": 10,
        "blocks": ["r1_k3_s11_e1_i32_o16_se0.25"]}
TINY_ACTIVATIONS = (8 * 16 * 16      # stem_conv
                    + 8 * 16 * 16    # block1a_dwconv
                    + 2 + 8          # block1a_se_reduce (int(8 * 0.25)) and se_expand, 1 x 1
                    + 8 * 16 * 16    # block1a_project_conv
                    + 320 * 16 * 16)  # top_conv; the classifier is not a convolution


def test_activations_equal_a_hand_count_on_a_tiny_model():
    spec = resolve_spec(**TINY)
    assert measure_cost(spec, "activations") == TINY_ACTIVATIONS == 88_074
    assert measure_cost(build_model(**TINY), "activations") == TINY_ACTIVATIONS


def test_measure_cost_gives_each_measure_from_spec_or_model():
    spec, model = resolve_spec("b0"), reference_model("b0")
    assert measure_cost(spec, "macs") == measure_cost(model, "macs") == 385_814_752
    assert measure_cost(spec, "activations") == measure_cost(model, "activations")
    assert measure_cost(spec, "params") == spec_cost(spec).params
    # Dollar et al. 2021 (Table 1) count B0's activations as about 6.7M at 224 px.
    assert measure_cost(spec, "activations") == pytest.approx(6.7e6, rel=0.03)


def test_unknown_measure_names_the_value_and_the_accepted_ones():
    with pytest.raises(ValueError, match="'flops'.*macs, activations, params"):
        measure_cost(resolve_spec(**TINY), "flops")
