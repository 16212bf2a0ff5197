"""Candidates admitted by measured cost: the admitted set, solved single-dimension points,
the paper's reference point, unreachable targets and the measures every candidate records."""

from __future__ import annotations

import dataclasses

import pytest

from efficientnet_search import config as config_lib
from efficientnet_search.arch.scaling import grid_box
from efficientnet_search.search.grid import costs, plan
from efficientnet_search.search.grid import run as grid
from tests.paths import CONFIGS

QUICK = CONFIGS / "grid" / "fashion_mnist_quick.yaml"
NO_LATENCY = ["candidates.latency.record=false"]


def _quick(*overrides: str) -> grid.GridConfig:
    return config_lib.load_config(grid.GridConfig, QUICK, [*NO_LATENCY, *overrides])


@pytest.mark.parametrize("cost", ["macs", "activations"])
def test_admitted_grid_points_lie_within_tolerance_of_the_target_as_built(cost):
    config = _quick(f"candidates.cost={cost}")
    table = plan.candidate_plan(config)
    meter = costs.CostMeter(config.proxy)
    compound = [c for c in table.candidates if c.kind == "compound"]
    assert compound
    for c in compound:
        assert abs(table.attrs[c.key]["cost_ratio"] - 2.0) <= 0.1
        assert table.attrs[c.key]["cost_ratio"] == meter.ratio(c.alpha, c.beta, c.gamma, cost)
    # Every grid point left out is off the target by more than the tolerance (or is a twin).
    kept = {costs.signature(meter.spec(c.alpha, c.beta, c.gamma)) for c in table.candidates}
    spec = config.candidates
    for c in grid_box(spec.alpha_range, spec.beta_range, spec.gamma_range, spec.step):
        if costs.signature(meter.spec(c.alpha, c.beta, c.gamma)) not in kept:
            assert abs(meter.ratio(c.alpha, c.beta, c.gamma, cost) - 2.0) > 0.1


def test_quick_grid_at_equal_macs_admits_the_documented_points():
    table = plan.candidate_plan(_quick())
    ratios = {c.key: round(table.attrs[c.key]["macs_ratio"], 3) for c in table.candidates}
    assert ratios == {
        "a1.00_b1.10_g1.10": 2.050, "a1.10_b1.50_g1.00": 1.914, "a1.10_b1.60_g1.00": 2.076,
        "a2.10_b1.20_g1.00": 2.010, "a3.01_b1.00_g1.00": 2.011, "a1.00_b1.77_g1.00": 1.950,
        "a1.00_b1.00_g1.19": 1.994, "a1.20_b1.10_g1.15": 2.540,
    }  # fmt: skip
    assert {c.kind for c in table.candidates if c.key == "a1.20_b1.10_g1.15"} == {"paper"}
    assert table.notes == ()


def test_single_dimension_points_are_solved_to_the_closest_measured_ratio():
    config = _quick()
    meter = costs.CostMeter(config.proxy)
    for dimension in costs.DIMENSIONS:
        solved = costs.solve_single(meter, dimension, "macs", 2.0, 0.1)
        assert solved.reachable and abs(solved.ratio - 2.0) <= 0.1
        # No multiplier on the fine axis builds a proxy closer to the target.
        index = costs.DIMENSIONS.index(dimension)
        for m in costs.axis_values(config.proxy, dimension):
            coefficients = [m if i == index else 1.0 for i in range(3)]
            assert abs(meter.ratio(*coefficients, "macs") - 2.0) >= abs(solved.ratio - 2.0)
    resolution = costs.solve_single(meter, "resolution", "macs", 2.0, 0.1)
    assert round(config.proxy.base_resolution * resolution.multiplier) == 38


def test_the_paper_point_is_trained_whatever_its_ratio():
    table = plan.candidate_plan(_quick("candidates.cost=activations"))
    paper = [c for c in table.candidates if c.kind == "paper"]
    assert [(c.alpha, c.beta, c.gamma) for c in paper] == [(1.2, 1.1, 1.15)]
    assert abs(table.attrs[paper[0].key]["cost_ratio"] - 2.0) > 0.1  # 1.73: outside, kept


def test_an_unreachable_target_says_so_and_suggests_a_base_that_reaches_it():
    table = plan.candidate_plan(_quick("candidates.cost=activations"))
    (note,) = table.notes
    assert note.startswith("depth-only cannot reach measured activations ratio 2 +- 0.1")
    assert "proxy.base_depth=0.35 makes it reachable" in note
    suggested = _quick("candidates.cost=activations", "proxy.base_depth=0.35")
    assert plan.candidate_plan(suggested).notes == ()


def test_width_rounding_at_the_quick_base_is_reported_with_a_wider_base():
    config = _quick()  # at width 0.25 no width multiplier builds a proxy within 0.02 of 2
    solved = costs.solve_single(costs.CostMeter(config.proxy), "width", "macs", 2.0, 0.02)
    note = costs.unreachable_note(solved, config.proxy, "macs", 2.0, 0.02)
    assert not solved.reachable and "channels round to multiples of 8" in note
    assert "proxy.base_width=0.3 makes it reachable (width x1.8: 2.005 by macs)" in note


# Two stages: building and timing each network takes a second, not ten.
TINY_SMOKE = ["proxy.blocks=[r1_k3_s11_e1_i32_o16_se0.25, r1_k3_s22_e6_i16_o24_se0.25]",
              "candidates.tolerance=1.5"]


def test_every_candidate_records_all_measures_once_kept_in_the_run_directory(tmp_path):
    config = config_lib.load_config(grid.GridConfig, CONFIGS / "grid" / "smoke.yaml",
                                    TINY_SMOKE)  # fmt: skip
    table = plan.candidate_plan(config, tmp_path)
    for attrs in table.attrs.values():
        assert {"macs_ratio", "activations_ratio", "latency_ratio", "latency_ms",
                "latency_device", "cost_ratio"} <= set(attrs)  # fmt: skip
        assert attrs["latency_ms"] > 0 and attrs["cost_ratio"] == attrs["macs_ratio"]
    plan.store_plan(config, table, tmp_path)
    again = plan.candidate_plan(config, tmp_path)  # read back: latencies not re-measured
    assert again == dataclasses.replace(table, attrs=dict(table.attrs))


def test_latency_as_the_cost_admits_by_timed_ratio():
    config = config_lib.load_config(grid.GridConfig, CONFIGS / "grid" / "smoke.yaml",
                                    [*TINY_SMOKE, "candidates.cost=latency",
                                     "candidates.tolerance=100",
                                     "candidates.single_dimension=false"])  # fmt: skip
    table = plan.candidate_plan(config)
    (paper,) = table.candidates
    assert table.attrs[paper.key]["cost"] == "latency"
    assert table.attrs[paper.key]["cost_ratio"] == table.attrs[paper.key]["latency_ratio"] > 0


def test_latency_settings_refuse_a_negative_minimum_duration():
    from efficientnet_search.search.proxy.latency import LatencyConfig

    with pytest.raises(ValueError, match="min_seconds >= 0.*min_seconds=-0.5"):
        LatencyConfig(min_seconds=-0.5)
