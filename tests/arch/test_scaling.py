"""Scaling arithmetic against the reference rules and the published table."""

from __future__ import annotations

import math

import pytest

from efficientnet_search.arch.blocks import B0_BLOCKS
from efficientnet_search.arch.scaling import (
    VARIANTS,
    ScalingParams,
    compound_scaling,
    get_variant,
    grid_candidates,
    plan_blocks,
    round_filters,
    round_repeats,
)


@pytest.mark.parametrize(
    ("filters", "width", "expected"),
    [(32, 1.0, 32), (32, 1.1, 32), (32, 1.2, 40), (32, 1.4, 48), (32, 2.0, 64),
     (1280, 1.1, 1408), (1280, 1.8, 2304), (16, 0.25, 8), (320, 0.25, 80), (24, 0.35, 8),
     (40, 0.3, 16)],
)
def test_round_filters_reference_values(filters, width, expected):
    assert round_filters(filters, width) == expected


def test_round_filters_never_more_than_ten_percent_down():
    for filters in range(8, 400, 4):
        for width in (0.1, 0.25, 0.5, 1.1, 1.3, 1.7):
            rounded = round_filters(filters, width)
            assert rounded % 8 == 0 and rounded >= 8
            assert rounded >= 0.9 * filters * width


def test_round_repeats_is_ceil():
    assert round_repeats(3, 1.1) == 4
    assert round_repeats(1, 3.1) == 4
    assert round_repeats(4, 1.0) == 4


def test_variants_are_the_published_table():
    table = {n: (p.width, p.depth, p.resolution, p.dropout) for n, p in VARIANTS.items()}
    assert table["b0"] == (1.0, 1.0, 224, 0.2)
    assert table["b4"] == (1.4, 1.8, 380, 0.4)
    assert table["b7"] == (2.0, 3.1, 600, 0.5)
    assert all(p.source == "table" for p in VARIANTS.values())


def test_unknown_variant_lists_valid_ones():
    with pytest.raises(ValueError, match="b0, b1, b2"):
        get_variant("b8")


def test_compound_scaling_formula():
    params = compound_scaling(1.2, 1.1, 1.15, 2, base_resolution=224)
    assert params.depth == pytest.approx(1.44)
    assert params.width == pytest.approx(1.21)
    assert params.resolution == round(224 * 1.15**2)
    assert params.source == "formula"
    assert compound_scaling(1.2, 1.1, 1.15, 0) == ScalingParams(1.0, 1.0, 224, 0.2, "formula")


@pytest.mark.parametrize(
    "kwargs",
    [dict(alpha=0), dict(beta=-1), dict(gamma=0), dict(phi=-1), dict(base_resolution=16)],
)
def test_compound_scaling_rejects_bad_values(kwargs):
    args = dict(alpha=1.2, beta=1.1, gamma=1.15, phi=1) | kwargs
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        compound_scaling(**args)


def test_scaling_params_validation():
    with pytest.raises(ValueError, match="resolution"):
        ScalingParams(1.0, 1.0, 31)
    with pytest.raises(ValueError, match="width"):
        ScalingParams(0.0, 1.0, 224)


def test_public_grid_has_about_108_points_all_within_tolerance():
    points = grid_candidates()
    assert len(points) == 108
    assert all(abs(p.alpha * p.beta**2 * p.gamma**2 - 2) < 0.1 for p in points)
    assert points == grid_candidates()  # deterministic order
    assert len({p.key for p in points}) == len(points)


def test_single_dimension_points_have_the_same_budget():
    points = grid_candidates(step=0.1, include_single_dimension=True)
    singles = [p for p in points if p.kind != "compound"]
    assert [p.kind for p in singles] == ["depth", "width", "resolution"]
    assert all(math.isclose(p.nominal_cost, 2.0, rel_tol=1e-3) for p in singles)


def test_tolerance_that_admits_nothing_gives_empty_grid():
    assert grid_candidates(alpha_range=(1.05, 1.95), step=0.3, tolerance=1e-3) == ()


def test_plan_blocks_names_strides_and_drop_rates():
    planned = plan_blocks(B0_BLOCKS, 1.0, 1.0, drop_connect_rate=0.2)
    assert len(planned) == 16
    assert [p.name for p in planned[:4]] == ["block1a_", "block2a_", "block2b_", "block3a_"]
    assert planned[1].args.strides == 2 and planned[2].args.strides == 1
    assert planned[2].args.filters_in == planned[2].args.filters_out == 24
    assert planned[0].drop_rate == 0 and planned[-1].drop_rate == pytest.approx(0.2 * 15 / 16)
    assert len(plan_blocks(B0_BLOCKS, 2.0, 3.1)) == 55  # B7


def test_a_depth_heavy_family_member_is_planned_and_costed_exactly():
    """phi=7 of a depth-only grid answer (alpha 4.01, as the notebooks' tiny grid can find)
    has 266,768 blocks: the repeated blocks of a stage share one frozen BlockArgs, and the
    cost is the one the block-by-block count gave before they did (6,609,821,757,664)."""
    from efficientnet_search.arch.family import Coefficients, scale_family

    member = scale_family(Coefficients(4.01, 1.0, 1.0), [7])[0]
    planned = member.spec.planned_blocks()
    assert len(planned) == 266_768
    stage2 = [p.args for p in planned if p.stage == 2]
    assert stage2[0].strides == 2 and stage2[0].filters_in == 16
    assert all(a is stage2[1] for a in stage2[1:])
    assert (stage2[1].strides, stage2[1].filters_in, stage2[1].filters_out) == (1, 24, 24)
    assert member.cost.macs == 6_609_821_757_664
