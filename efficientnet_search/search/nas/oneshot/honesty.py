"""The calibration verdict: the supernet's ranking against stand-alone accuracy, over all and
within equal-MACs bins, beside MACs, params and synflow, and whether any of it is a finding.

A supernet claim needs its Spearman above the best of MACs and params alone (the paired
bootstrap's lower bound above 0) both over the whole calibration set (`ranking.compare`) and
within bins of equal MACs (`bins.within_bins`): a ranking that only sorts by size is not
evidence that the chosen architecture is better than another of its size (Ning et al. 2020).
With fewer than 2 x `bins.BIN_POINTS` architectures there is one bin, so "within bins" is the
whole set, and the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from efficientnet_search.search.nas.oneshot import bins as bins_lib
from efficientnet_search.search.nas.oneshot import ranking


def calibration_ranking(truth: Sequence[float], picks: Sequence[Mapping[str, Any]],
                        synflow: Sequence[float] | None, *, samples: int,
                        seed: int) -> dict[str, Any]:
    """`ranking.compare`'s record plus `within_bins` and `finding` (over all and within).

    Args:
      truth: stand-alone mean accuracy of each calibration architecture.
      picks: their scored records (score, macs, params).
      synflow: their log synflow (zero_cost.py), or None where it was not computed.
      samples, seed: of the bootstrap.
    """
    predictors = {"supernet": [p["score"] for p in picks], "macs": [p["macs"] for p in picks],
                  "params": [p["params"] for p in picks]}  # fmt: skip
    if synflow is not None:
        predictors["synflow"] = list(synflow)
    out = ranking.compare(truth, predictors, samples=samples, seed=seed)
    out["within_bins"] = bins_lib.within_bins(truth, predictors, predictors["macs"],
                                              samples=samples, seed=seed)  # fmt: skip
    over_all = out["supernet_minus_cost"]["finding"]
    within = out["within_bins"]["supernet_minus_cost"]["finding"]
    out["finding"] = bool(over_all and within)
    return out
