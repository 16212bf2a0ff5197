"""Rank correlations within equal-cost bins: does a predictor rank architectures of about the
same multiply-adds, where cost alone has nothing left to say?

Supernet scores lean toward model size (Ning et al. 2020) and zero-cost proxies often do no
better than the parameter count (ZiCo, Li et al. 2023; NAS-Bench-Suite-Zero, Krishnakumar
et al. 2022), so a correlation over the whole calibration set can be size alone. Within a
bin of near-equal MACs that explanation is gone. The calibration set is sorted by MACs and
cut into bins of equal count, `len // BIN_POINTS` of them (at least 1): four architectures
are the fewest whose Spearman takes more than a handful of values (three give only +-1 and
+-0.5), and more bins of fewer points would be noise. A statistic is the size-weighted mean
of its value in each bin (bins where it is undefined, e.g. a constant predictor, dropped);
its interval is a stratified bootstrap (architectures resampled within their bin).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from efficientnet_search.search.nas.oneshot.ranking import kendall
from efficientnet_search.search.stats import spearman

BIN_POINTS = 4  # architectures per bin, at least (see the module docstring)
COSTS = ("macs", "params")


def equal_cost_bins(macs: Sequence[float], points: int = BIN_POINTS) -> list[np.ndarray]:
    """Indices of `macs` in `max(1, len // points)` bins of consecutive MACs, equal counts."""
    order = np.argsort(np.asarray(macs, dtype=float), kind="stable")
    return [np.sort(b) for b in np.array_split(order, max(1, len(order) // points))]


def within_bins(truth: Sequence[float], predictors: Mapping[str, Sequence[float]],
                macs: Sequence[float], *, samples: int = 1000, seed: int = 0) -> dict:
    """Spearman and Kendall of each predictor against `truth` within equal-MACs bins, with
    stratified bootstrap intervals, and `supernet`'s paired gain over the best of MACs and
    params alone (the same statistic as `ranking.compare`'s, within bins)."""
    bins = equal_cost_bins(macs)
    t = np.asarray(truth, dtype=float)
    values = {k: np.asarray(v, dtype=float) for k, v in predictors.items()}
    rng = np.random.default_rng(seed)
    draws = [[rng.choice(b, len(b)) for b in bins] for _ in range(samples)]
    out: dict = {"bins": len(bins), "sizes": [len(b) for b in bins],
                 "macs_ranges": [[float(np.min(np.asarray(macs)[b])),
                                  float(np.max(np.asarray(macs)[b]))] for b in bins],
                 "predictors": {}}  # fmt: skip
    for name, v in values.items():
        out["predictors"][name] = {}
        for label, statistic in (("spearman", spearman), ("kendall", kendall)):
            def pooled(groups, v=v, statistic=statistic):
                return _weighted([statistic(v[g], t[g]) for g in groups], groups)

            out["predictors"][name][label] = pooled(bins)
            out["predictors"][name][f"{label}_ci"] = _interval([pooled(d) for d in draws])
    if {"supernet", *COSTS} <= set(values):
        def gain(groups) -> float:
            rho = {k: _weighted([spearman(values[k][g], t[g]) for g in groups], groups)
                   for k in ("supernet", *COSTS)}  # fmt: skip
            costs = [abs(rho[k]) for k in COSTS if not math.isnan(rho[k])]
            return rho["supernet"] - max(costs) if costs else rho["supernet"]

        ci = _interval([gain(d) for d in draws])
        out["supernet_minus_cost"] = {"gain": gain(bins), "ci": ci,
                                      "finding": bool(not math.isnan(ci[0]) and ci[0] > 0)}
    return out


def _weighted(stats: list[float], groups: list[np.ndarray]) -> float:
    """Size-weighted mean of the defined per-bin statistics (NaN when none is defined)."""
    pairs = [(s, len(g)) for s, g in zip(stats, groups, strict=True) if not math.isnan(s)]
    if not pairs:
        return math.nan
    return float(sum(s * n for s, n in pairs) / sum(n for _, n in pairs))


def _interval(draws: list[float], confidence: float = 0.95) -> tuple[float, float]:
    kept = np.asarray([d for d in draws if not math.isnan(d)])
    if not len(kept):
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(kept, tail)), float(np.percentile(kept, 100 - tail))

