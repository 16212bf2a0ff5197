"""The calibration verdict within equal-MACs bins: a size-only ranking is not a finding."""

from __future__ import annotations

import numpy as np
import pytest

from efficientnet_search.search.nas.oneshot import bins as bins_lib
from efficientnet_search.search.nas.oneshot.honesty import calibration_ranking
from efficientnet_search.search.nas.oneshot.report import within_bins_lines

# 16 architectures in 4 MACs levels; within a level accuracy follows a pattern that MACs
# (which still rise a little inside the level) do not follow.
MACS = [100 * level + k for level in range(4) for k in range(4)]
WITHIN = [2, 0, 3, 1]
TRUTH = [0.5 + 0.1 * level + 0.01 * WITHIN[k] for level in range(4) for k in range(4)]


def test_bins_are_equal_counts_of_consecutive_macs():
    bins = bins_lib.equal_cost_bins([5, 1, 7, 3, 2, 8, 6, 4])
    assert [sorted(np.asarray([5, 1, 7, 3, 2, 8, 6, 4])[b]) for b in bins] == [
        [1, 2, 3, 4], [5, 6, 7, 8]]
    assert len(bins_lib.equal_cost_bins(range(5))) == 1  # too few to split
    assert len(bins_lib.equal_cost_bins(range(13))) == 3


def _picks(score):
    return [{"score": s, "macs": m, "params": m * 3}
            for s, m in zip(score, MACS[:len(score)], strict=True)]


def test_a_size_only_ranking_is_not_a_finding_within_bins():
    size_only = [m + 0.5 for m in MACS]  # the supernet just sorts by size
    out = calibration_ranking(TRUTH, _picks(size_only), None, samples=200, seed=0)
    assert out["predictors"]["supernet"]["spearman"] > 0.8  # over all it looks good
    within = out["within_bins"]
    assert within["bins"] == 4 and within["sizes"] == [4, 4, 4, 4]
    assert within["predictors"]["supernet"]["spearman"] < 0.5
    assert out["finding"] is False
    text = "\n".join(within_bins_lines(within, 16))
    assert "## Within equal-MACs bins (4 bins: 4, 4, 4, 4 architectures)" in text
    assert "does **not** beat MACs/params" in text and "not a finding" in text


def test_a_ranking_that_sees_within_bins_is_a_finding():
    sees = [10 * level + WITHIN[k] for level in range(4) for k in range(4)]
    out = calibration_ranking(TRUTH, _picks(sees), [float(m) for m in MACS], samples=200,
                              seed=0)  # fmt: skip
    within = out["within_bins"]
    assert within["predictors"]["supernet"]["spearman"] == pytest.approx(1.0)
    assert within["supernet_minus_cost"]["finding"] is True
    assert "synflow" in within["predictors"] and "synflow" in out["predictors"]
    assert out["finding"] == out["supernet_minus_cost"]["finding"]
    assert "a finding." in "\n".join(within_bins_lines(within, 16))


def test_one_bin_says_the_set_is_too_small_to_split():
    out = calibration_ranking(TRUTH[:5], _picks(MACS[:5]), None, samples=50, seed=0)
    assert out["within_bins"]["bins"] == 1
    assert "too few to split" in "\n".join(within_bins_lines(out["within_bins"], 5))
