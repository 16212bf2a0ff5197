"""The equal-cost reading of a grid: a trend of accuracy with log(cost), residuals, verdicts."""

from __future__ import annotations

import math
import re

import pytest

from efficientnet_search.search.grid import equal_cost

NOISE = {"pooled_std": 0.005, "df": 6, "confidence": 0.95}


def _candidate(kind: str, ratio: float, mean: float, n: int = 2) -> dict:
    return {"key": f"{kind}{ratio}", "kind": kind, "cost": "macs", "macs_ratio": ratio,
            "mean": mean, "n": n}


def _on_trend(ratio: float) -> float:
    return 0.70 + 0.05 * math.log2(ratio)  # 5 points per doubling


def test_residuals_from_the_trend_decide_which_dimension_wins_at_equal_cost():
    candidates = [_candidate("compound", r, _on_trend(r)) for r in (1.0, 1.5, 2.0, 3.0, 4.0)]
    candidates += [_candidate("resolution", 2.4, _on_trend(2.4) + 0.03),
                   _candidate("depth", 1.3, _on_trend(1.3) - 0.03),
                   _candidate("width", 1.9, _on_trend(1.9))]
    result = equal_cost.analyse(candidates, NOISE)
    residuals = {r["kind"]: r["residual"] for r in result["residuals"] if r["kind"] != "compound"}
    assert residuals["resolution"] > 0.02 and residuals["depth"] < -0.02
    assert result["dimensions"] == {"resolution": "above the trend", "depth": "below the trend",
                                    "width": "on the trend"}  # fmt: skip
    pair = next(p for p in result["pairs"] if {p["winner"], p["loser"]} == {"resolution",
                                                                            "depth"})
    assert pair["winner"] == "resolution" and pair["finding"]
    # 6 points apart by construction; the fit over every candidate (these included) takes
    # some of it into the slope.
    assert pair["difference"] == pytest.approx(0.052, abs=0.002)
    assert "At equal measured MACs, resolution beats depth by 5.21 +- 1.22 points." in (
        result["verdict"])
    assert result["trend"]["slope_per_doubling"] == pytest.approx(0.059, abs=0.001)
    head = r"Trend: \+5\.\d\d \+- \d\.\d\d accuracy points per doubling of measured MACs\."
    assert re.match(head, result["verdict"])
    assert "spread too little" not in result["verdict"]


def test_a_slope_resting_on_bunched_costs_says_it_is_within_seed_noise():
    # Every candidate within 2.0 +- 0.05x but the paper's point at 2.5x, as in the quick grid:
    # a 1-point difference at the far point fixes a slope that seed noise could give.
    candidates = [_candidate("compound", r, 0.80) for r in (1.95, 2.0, 2.05)]
    candidates += [_candidate("paper", 2.5, 0.805), _candidate("depth", 1.98, 0.79),
                   _candidate("width", 2.02, 0.80)]
    result = equal_cost.analyse(candidates, NOISE)
    interval = result["trend"]["slope_interval"]
    assert interval > abs(result["trend"]["slope_per_doubling"])
    assert "spread too little to fit a slope beyond seed noise" in result["verdict"]
    spread = equal_cost.analyse([{**c, "macs_ratio": c["macs_ratio"] ** 4} for c in candidates],
                                NOISE)  # the same accuracies over costs 16x as far apart
    assert spread["trend"]["slope_interval"] == pytest.approx(interval / 4)


def test_differences_within_seed_noise_are_not_a_finding():
    candidates = [_candidate("compound", r, _on_trend(r)) for r in (1.0, 2.0, 4.0)]
    candidates += [_candidate("resolution", 2.4, _on_trend(2.4) + 0.002),
                   _candidate("depth", 1.3, _on_trend(1.3))]
    result = equal_cost.analyse(candidates, NOISE)
    assert "resolution leads depth by 0." in result["verdict"]
    assert "within seed noise, not a finding" in result["verdict"]


def test_one_seed_or_too_few_candidates_judge_nothing():
    few = equal_cost.analyse([_candidate("depth", 1.3, 0.7), _candidate("width", 2, 0.8)], NOISE)
    assert few["trend"] is None and "nothing judged" in few["verdict"]
    one_seed = equal_cost.analyse(
        [_candidate("compound", 1.0, 0.7, 1), _candidate("depth", 1.5, 0.72, 1),
         _candidate("width", 2.0, 0.75, 1)], {"pooled_std": None, "df": 0, "confidence": 0.95})
    assert one_seed["dimensions"] == {"depth": "unknown", "width": "unknown"}
    assert "seed noise unknown" in one_seed["verdict"]
    assert one_seed["trend"]["slope_interval"] is None and "+-" not in one_seed["verdict"]


def test_a_slope_set_by_one_far_candidate_is_named_and_the_budget_opens_the_verdict():
    # Everything bunched at 2x and flat, but one point at 4x 10 points higher: the slope
    # clears seed noise only because of that one candidate.
    candidates = [_candidate("compound", r, 0.80) for r in (1.95, 2.0, 2.05)]
    candidates += [_candidate("paper", 4.0, 0.90), _candidate("depth", 1.98, 0.80),
                   _candidate("width", 2.02, 0.80)]
    result = equal_cost.analyse(candidates, NOISE, budget="at 3 proxy epochs")
    trend = result["trend"]
    assert trend["slope_interval"] < trend["slope_per_doubling"]  # judged beyond noise
    (alone,) = trend["pivotal"]
    assert alone["key"] == "paper4.0" and abs(alone["slope_per_doubling"]) < 0.01
    assert result["verdict"].startswith("At 3 proxy epochs: Trend:")
    assert "Without paper4.0 (paper) the slope would be +0.00 +-" in result["verdict"]
    assert "that one candidate sets the trend" in result["verdict"]
    # Spread evenly, no single candidate carries the slope.
    even = [_candidate("compound", r, _on_trend(r)) for r in (1.0, 1.5, 2.0, 3.0, 4.0)]
    assert equal_cost.analyse(even, NOISE)["trend"]["pivotal"] == []
