"""Rank correlations with bootstrap intervals: does a predictor order architectures as
stand-alone training does, and better than their cost alone?

Spearman's rho (Pearson's correlation of average ranks, so ties share a rank) is
`search.stats.spearman`, which the grid's budget check uses too; Kendall's tau-b (pairs,
corrected for ties) is written out here (scipy is not a dependency). Intervals are
percentile bootstraps over architectures (pairs resampled together). The comparison against
cost is paired: on the same resamples, the supernet's rho minus the best |rho| of
multiply-adds or params alone (a cost can rank in either direction: here accuracy falls with
parameter count, DESIGN.md), so a supernet claim needs the lower bound of that difference
above 0 (EPS, Yu et al. 2020; Ning et al. 2020: supernet scores lean toward model size).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from efficientnet_search.search.stats import spearman

MIN_POINTS = 5  # below this a rank correlation's bootstrap interval says nothing


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt of the untied pairs of each side."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    untied = math.sqrt(float(np.sum(dx != 0)) * float(np.sum(dy != 0)))
    return float(np.sum(dx * dy) / untied) if untied else math.nan


def bootstrap(x: Sequence[float], y: Sequence[float], statistic, *, samples: int = 1000,
              confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of `statistic(x, y)` over resampled pairs (NaN draws dropped)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    draws = [statistic(x[k], y[k]) for k in rng.integers(0, len(x), (samples, len(x)))]
    draws = np.asarray([d for d in draws if not math.isnan(d)])
    if not len(draws):
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))


def compare(truth: Sequence[float], predictors: Mapping[str, Sequence[float]], *,
            samples: int = 1000, seed: int = 0) -> dict:
    """Spearman and Kendall (with intervals) of each predictor against `truth`, and the
    paired difference of `supernet`'s rho over the best of `macs` and `params` alone.

    Raises:
      ValueError: fewer than MIN_POINTS architectures.
    """
    if len(truth) < MIN_POINTS:
        raise ValueError(f"a rank correlation needs >= {MIN_POINTS} architectures, got "
                         f"{len(truth)}; raise oneshot.calibration_size")  # fmt: skip
    out: dict = {"n": len(truth), "predictors": {}}
    for name, values in predictors.items():
        out["predictors"][name] = {
            "spearman": spearman(values, truth),
            "spearman_ci": bootstrap(values, truth, spearman, samples=samples, seed=seed),
            "kendall": kendall(values, truth),
            "kendall_ci": bootstrap(values, truth, kendall, samples=samples, seed=seed),
        }
    if {"supernet", "macs", "params"} <= set(predictors):
        out["supernet_minus_cost"] = _paired_gain(truth, predictors, samples, seed)
    return out


def _paired_gain(truth, predictors, samples: int, seed: int) -> dict:
    """rho(supernet) - max(|rho(macs)|, |rho(params)|), point and paired bootstrap interval."""
    t = np.asarray(truth, dtype=float)
    s, m, p = (np.asarray(predictors[k], dtype=float) for k in ("supernet", "macs", "params"))

    def gain(k) -> float:
        return spearman(s[k], t[k]) - max(abs(spearman(m[k], t[k])), abs(spearman(p[k], t[k])))

    rng = np.random.default_rng(seed)
    draws = np.asarray([gain(k) for k in rng.integers(0, len(t), (samples, len(t)))])
    draws = draws[~np.isnan(draws)]
    ci = (float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))) if len(
        draws) else (math.nan, math.nan)
    return {"gain": gain(np.arange(len(t))), "ci": ci,
            "finding": bool(len(draws) and ci[0] > 0)}  # fmt: skip
