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

That difference asks whether the supernet ranks better than cost does; it cannot credit a
predictor that agrees with cost and also knows more. So beside it stands the partial rank
correlation of the supernet with the truth given MACs and params (the ordinary partial
correlation computed on ranks, as R's ppcor `pcor(method = "spearman")` computes it: the
linear effect of the cost ranks taken out of both sides): above 0 beyond its bootstrap
interval, the supernet orders architectures that cost alone leaves unordered. Both are
reported; the verdicts keep the difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from efficientnet_search.search.stats import ranks, spearman

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
        out["supernet_given_cost"] = given_cost(truth, predictors, samples=samples, seed=seed)
    return out


def partial_spearman(x: Sequence[float], y: Sequence[float],
                     controls: Sequence[Sequence[float]]) -> float:
    """Spearman's rho of `x` and `y` with the controls' ranks partialled out: the correlation
    of the residuals of x's and y's ranks regressed (least squares, with intercept) on the
    controls' ranks. NaN when too few points or a residual is zero (x or y explained)."""
    rx, ry = np.asarray(ranks(x)), np.asarray(ranks(y))
    design = np.column_stack([np.ones(len(rx)), *(ranks(c) for c in controls)])
    if len(rx) <= design.shape[1] + 1:
        return math.nan
    residual = [r - design @ np.linalg.lstsq(design, r, rcond=None)[0] for r in (rx, ry)]
    scale = math.sqrt(float(residual[0] @ residual[0]) * float(residual[1] @ residual[1]))
    return float(residual[0] @ residual[1]) / scale if scale > 1e-9 * len(rx) ** 2 \
        else math.nan


def given_cost(truth: Sequence[float], predictors: Mapping[str, Sequence[float]], *,
               samples: int = 1000, seed: int = 0) -> dict:
    """partial_spearman(supernet, truth | MACs, params), with a percentile bootstrap interval
    over architectures (the same resamples as `_paired_gain`: the same seed)."""
    t, s, m, p = _columns(truth, predictors)
    rho, ci = _resampled(lambda k: partial_spearman(s[k], t[k], [m[k], p[k]]), len(t),
                         samples, seed)
    return {"partial_spearman": rho, "ci": ci, "above_zero": bool(ci[0] > 0)}


def _paired_gain(truth, predictors, samples: int, seed: int) -> dict:
    """rho(supernet) - max(|rho(macs)|, |rho(params)|), point and paired bootstrap interval."""
    t, s, m, p = _columns(truth, predictors)

    def gain(k) -> float:
        return spearman(s[k], t[k]) - max(abs(spearman(m[k], t[k])), abs(spearman(p[k], t[k])))

    value, ci = _resampled(gain, len(t), samples, seed)
    return {"gain": value, "ci": ci, "finding": bool(ci[0] > 0)}


def _columns(truth, predictors) -> tuple[np.ndarray, ...]:
    """truth, supernet, MACs and params as float arrays."""
    return tuple(np.asarray(v, dtype=float) for v in (
        truth, predictors["supernet"], predictors["macs"], predictors["params"]))


def _resampled(statistic, n: int, samples: int, seed: int) -> tuple[float, tuple[float, float]]:
    """(statistic over all n architectures, its 95% percentile interval over `samples`
    resamples of them; NaN draws dropped, a NaN interval when none is left)."""
    rng = np.random.default_rng(seed)
    draws = np.asarray([statistic(k) for k in rng.integers(0, n, (samples, n))])
    draws = draws[~np.isnan(draws)]
    ci = (float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))) if len(
        draws) else (math.nan, math.nan)
    return statistic(np.arange(n)), ci


def given_cost_sentence(given: Mapping) -> str:
    """One report sentence on `given_cost`'s record."""
    rho, low, high = (math.nan if v is None else float(v)  # JSON writes NaN as null
                      for v in (given["partial_spearman"], *given["ci"]))
    if math.isnan(rho):
        return ("Given MACs and params: undefined here (too few architectures, or cost ranks "
                "them exactly).")
    text = (f"Given MACs and params (partial Spearman of the ranks, cost ranks taken out of "
            f"both sides): {rho:.2f} [{low:.2f}, {high:.2f}]")
    if given["above_zero"]:
        return text + ("; above 0: the supernet orders architectures that cost alone leaves "
                       "unordered.")
    return text + ": not above 0, so nothing beyond cost is shown."
