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
