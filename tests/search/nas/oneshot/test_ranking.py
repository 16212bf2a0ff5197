"""Rank correlations written out: checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from efficientnet_search.search import stats
from efficientnet_search.search.nas.oneshot import ranking


def test_ranks_share_ties():
    np.testing.assert_array_equal(stats.ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1])


def test_spearman_and_kendall_match_hand_values():
    x, y = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    # d = (-1, 1, -1, 1, 0): rho = 1 - 6 * 4 / (5 * 24) = 0.8
    assert ranking.spearman(x, y) == pytest.approx(0.8)
    # 10 pairs, 2 discordant: tau = (8 - 2) / 10
    assert ranking.kendall(x, y) == pytest.approx(0.6)
    assert ranking.spearman(x, y[::-1]) == pytest.approx(-ranking.spearman(x, y))


def test_kendall_tau_b_corrects_for_ties():
    # x ties one pair: 9 untied pairs in x, 10 in y; concordant 9, discordant 0.
    assert ranking.kendall([1, 1, 2, 3, 4], [1, 2, 3, 4, 5]) == pytest.approx(9 / math.sqrt(90))


def test_constant_side_has_no_correlation():
    assert math.isnan(ranking.spearman([1, 1, 1, 1, 1], [1, 2, 3, 4, 5]))


def test_compare_needs_five_architectures_and_flags_a_size_only_ranking():
    with pytest.raises(ValueError, match="needs >= 5 architectures, got 4"):
        ranking.compare([0.1, 0.2, 0.3, 0.4], {"supernet": [1, 2, 3, 4]})
    truth = [0.80, 0.81, 0.79, 0.83, 0.82, 0.84, 0.78, 0.85]
    macs = [2, 3, 1, 5, 4, 6, 0, 7]  # ranks the truth perfectly
    out = ranking.compare(truth, {"supernet": macs, "macs": macs, "params": macs},
                          samples=200)
    assert out["predictors"]["supernet"]["spearman"] == pytest.approx(1.0)
    assert out["supernet_minus_cost"]["gain"] == pytest.approx(0.0)
    assert out["supernet_minus_cost"]["finding"] is False
    low, high = out["predictors"]["macs"]["spearman_ci"]
    assert low <= 1.0 <= high + 1e-12


def test_partial_spearman_with_one_control_is_the_first_order_formula():
    rng = np.random.default_rng(1)
    z = rng.normal(size=30)
    x, y = z + rng.normal(size=30), z + rng.normal(size=30)
    rxy, rxz, ryz = (ranking.spearman(a, b) for a, b in ((x, y), (x, z), (y, z)))
    formula = (rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2))
    assert ranking.partial_spearman(x, y, [z]) == pytest.approx(formula)


def test_given_cost_credits_what_a_predictor_knows_beyond_cost():
    rng = np.random.default_rng(0)
    params = rng.permutation(40).astype(float)
    rest = rng.normal(0, 4, 40)
    truth = -params + rest  # accuracy falls with params; `rest` is what cost cannot tell
    echo = -params + rng.normal(0, 4, 40)  # knows params, nothing of the rest
    informed = -params + rest + rng.normal(0, 8, 40)  # knows params and, noisily, the rest
    macs = rng.normal(size=40)
    for supernet, above in ((echo, False), (informed, True)):
        out = ranking.compare(truth, {"supernet": supernet, "macs": macs, "params": params},
                              samples=300)
        given = out["supernet_given_cost"]
        assert given["above_zero"] is above
        assert given["ci"][0] <= given["partial_spearman"] <= given["ci"][1]
        # neither ranks better than params alone: the difference credits neither
        assert out["supernet_minus_cost"]["finding"] is False


def test_partial_spearman_is_undefined_when_a_side_is_the_control():
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert math.isnan(ranking.partial_spearman(x, [2, 1, 4, 3, 6, 5], [x]))
    assert math.isnan(ranking.partial_spearman(x[:3], x[:3], [[3, 1, 2]]))


def test_given_cost_interval_holds_its_coverage_for_a_cost_echo():
    # A predictor that knows only params should read "above zero" in about 2.5% of draws
    # (one side of a 95% interval); allow up to 3 of 30.
    hits = 0
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        params = rng.permutation(30).astype(float)
        truth, echo = (-params + rng.normal(0, 4, 30) for _ in range(2))
        given = ranking.given_cost(truth, {"supernet": echo, "macs": rng.normal(size=30),
                                           "params": params}, samples=200, seed=seed)
        hits += given["above_zero"]
    assert hits <= 3
