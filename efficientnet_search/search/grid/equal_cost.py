"""Accuracy at equal measured cost: the trend over candidates and what lies off it (no TF).

Candidates of one grid never cost exactly the same once built (rounding), and more compute
buys accuracy on its own: a comparison of raw means partly ranks cost. So the grid is read
as the paper's Table 3 reads it, at equal cost: fit mean accuracy against log(measured cost
ratio) over all candidates (least squares, weighted by seeds), and judge each candidate by
its residual from that trend. A residual's interval is the seed interval of its mean (the
pooled seed std of search/stats.py, two-sided Student t, `confidence`); two residuals differ when
their difference exceeds t * std * sqrt(1/n1 + 1/n2). The fit's own uncertainty is not in the
intervals, so a verdict needs the difference to clear seed noise alone and is stated as
"not a finding" otherwise; the trend's slope gets its own seed interval, which says when
the costs spread too little to fit one. Fewer than 3 candidates, or one seed each, judge
nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from efficientnet_search.search import stats

SINGLE = ("depth", "width", "resolution")
COST_LABELS = {"macs": "MACs", "activations": "activations", "latency": "latency"}


def trend_cost(candidates: Sequence[Mapping[str, Any]]) -> str:
    """The measure the trend is fitted on: the admitting cost, multiply-adds for nominal."""
    costs = {c.get("cost") for c in candidates} - {None, "nominal"}
    return costs.pop() if len(costs) == 1 else "macs"


def analyse(candidates: Sequence[Mapping[str, Any]], noise: Mapping[str, Any]) -> dict[str, Any]:
    """The equal-cost section of results.json from its candidates and pooled noise."""
    cost = trend_cost(candidates)
    points = [c for c in candidates if _positive(c.get(f"{cost}_ratio"))]
    base = {"cost": cost, "trend": None, "residuals": [], "dimensions": {}, "pairs": []}
    if len(points) < 3 or len({round(c[f"{cost}_ratio"], 6) for c in points}) < 2:
        return {**base, "verdict": f"Fewer than 3 candidates with distinct measured {cost}: "
                                   "no trend of accuracy with cost, nothing judged at equal cost."}
    xs = [math.log(c[f"{cost}_ratio"]) for c in points]
    intercept, slope, spread = _weighted_fit(xs, [c["mean"] for c in points],
                                             [c["n"] for c in points])  # fmt: skip
    std, df = noise.get("pooled_std"), noise.get("df") or 0
    t = stats.t_quantile((1 + noise["confidence"]) / 2, df) if std and df else math.nan
    residuals = [
        {"key": c["key"], "kind": c["kind"], "cost_ratio": c[f"{cost}_ratio"], "n": c["n"],
         "residual": c["mean"] - (intercept + slope * x),
         "interval": t * std / math.sqrt(c["n"]) if math.isfinite(t) else None}
        for c, x in zip(points, xs, strict=True)
    ]  # fmt: skip
    dimensions = {r["kind"]: _judge(r) for r in residuals if r["kind"] in SINGLE}
    pairs = [_pair(a, b, t, std) for i, a in enumerate(residuals) for b in residuals[i + 1:]
             if a["kind"] in SINGLE and b["kind"] in SINGLE]  # fmt: skip
    trend = {"intercept": intercept, "slope_per_doubling": slope * math.log(2),
             "slope_interval": (t * std / math.sqrt(spread) * math.log(2)
                                if math.isfinite(t) else None)}  # fmt: skip
    result = {**base, "trend": trend, "residuals": residuals, "dimensions": dimensions,
              "pairs": pairs}  # fmt: skip
    return {**result, "verdict": verdict(result)}


def _weighted_fit(xs: Sequence[float], ys: Sequence[float],
                  weights: Sequence[int]) -> tuple[float, float, float]:
    """Weighted least squares: (intercept, slope, sum w (x - mean x)^2).

    The third value gives the slope's seed interval: a mean over n seeds has variance
    std^2 / n, so with weights n the slope's standard deviation is std / sqrt(that sum).
    Costs bunched together (every candidate near the target but one) make it large.
    """
    total = sum(weights)
    mx = sum(w * x for w, x in zip(weights, xs, strict=True)) / total
    my = sum(w * y for w, y in zip(weights, ys, strict=True)) / total
    sxx = sum(w * (x - mx) ** 2 for w, x in zip(weights, xs, strict=True))
    sxy = sum(w * (x - mx) * (y - my) for w, x, y in zip(weights, xs, ys, strict=True))
    slope = sxy / sxx
    return my - slope * mx, slope, sxx


def _judge(residual: Mapping[str, Any]) -> str:
    interval = residual["interval"]
    if interval is None:
        return "unknown"
    if residual["residual"] > interval:
        return "above the trend"
    return "below the trend" if residual["residual"] < -interval else "on the trend"


def _pair(a: Mapping[str, Any], b: Mapping[str, Any], t: float, std: float | None
          ) -> dict[str, Any]:
    winner, loser = (a, b) if a["residual"] >= b["residual"] else (b, a)
    difference = winner["residual"] - loser["residual"]
    interval = t * std * math.sqrt(1 / a["n"] + 1 / b["n"]) if math.isfinite(t) else None
    return {"winner": winner["kind"], "loser": loser["kind"], "difference": difference,
            "interval": interval,
            "finding": interval is not None and difference > interval}  # fmt: skip


def verdict(result: Mapping[str, Any]) -> str:
    """Sentences at equal cost: each pair of single dimensions, a finding or not."""
    label = COST_LABELS.get(result["cost"], result["cost"])
    trend = result["trend"]
    slope, interval = trend["slope_per_doubling"], trend.get("slope_interval")
    if interval is None:
        head = f"Trend: {100 * slope:+.2f} accuracy points per doubling of measured {label}."
    else:
        head = (f"Trend: {100 * slope:+.2f} +- {100 * interval:.2f} accuracy points per "
                f"doubling of measured {label}")
        head += (": the candidates' costs spread too little to fit a slope beyond seed "
                 "noise." if interval >= abs(slope) else ".")
    sentences = []
    for pair in result["pairs"]:
        if pair["interval"] is None:
            sentences.append(f"{pair['winner']} vs {pair['loser']}: seed noise unknown (one "
                             "seed), not judged.")
            continue
        amount = (f"{100 * pair['difference']:.2f} +- {100 * pair['interval']:.2f} points")
        if pair["finding"]:
            sentences.append(f"At equal measured {label}, {pair['winner']} beats "
                             f"{pair['loser']} by {amount}.")
        else:
            sentences.append(f"At equal measured {label}, {pair['winner']} leads "
                             f"{pair['loser']} by {amount}: within seed noise, not a finding.")
    if not result["pairs"]:
        sentences.append("No two single-dimension points to compare.")
    return " ".join([head, *sentences])


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
