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
nothing. A slope is also refitted without each candidate in turn (leave-one-out): a candidate
without which the slope changes sign, or stops clearing seed noise, sets the slope alone, and
the verdict says so (in the quick grid the paper's point is the only one far from 2x).
`budget` ("at 3 proxy epochs") opens the verdict: what holds at one training budget may not
at another (Bello et al. 2021, ResNet-RS).
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


def analyse(candidates: Sequence[Mapping[str, Any]], noise: Mapping[str, Any],
            budget: str | None = None) -> dict[str, Any]:
    """The equal-cost section of results.json from its candidates and pooled noise;
    `budget` (e.g. "at 3 proxy epochs") is where the verdict holds."""
    cost = trend_cost(candidates)
    points = [c for c in candidates if _positive(c.get(f"{cost}_ratio"))]
    base = {"cost": cost, "trend": None, "residuals": [], "dimensions": {}, "pairs": [],
            "budget": budget}
    if len(points) < 3 or len({round(c[f"{cost}_ratio"], 6) for c in points}) < 2:
        return {**base, "verdict": _at(budget, f"Fewer than 3 candidates with distinct measured "
                                               f"{cost}: no trend of accuracy with cost, nothing "
                                               "judged at equal cost.")}
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
                                if math.isfinite(t) else None),
             "pivotal": _pivotal(points, xs, slope, spread, t, std)}  # fmt: skip
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


def _pivotal(points: Sequence[Mapping[str, Any]], xs: Sequence[float], slope: float,
             spread: float, t: float, std: float | None) -> list[dict[str, Any]]:
    """Candidates that set a slope judged beyond seed noise alone: refitted without one, the
    slope changes sign or its seed interval comes to include 0 (a slope within noise is
    already reported as such, and nothing is singled out).

    `spread` is the full fit's sum of w (x - mean x)^2; with `t * std` it gives the slope's
    interval, as in `analyse`. Without enough distinct costs left, no slope exists at all.
    """
    noise = t * std if math.isfinite(t) and std else None
    judged = noise is not None and noise / math.sqrt(spread) < abs(slope)
    out = []
    for index, candidate in enumerate(points):
        rest = [i for i in range(len(points)) if i != index]
        entry = {"key": candidate["key"], "kind": candidate["kind"],
                 "slope_per_doubling": None, "slope_interval": None}
        if len({round(xs[i], 6) for i in rest}) < 2:
            out.append(entry)
            continue
        _, loo, loo_spread = _weighted_fit([xs[i] for i in rest],
                                           [points[i]["mean"] for i in rest],
                                           [points[i]["n"] for i in rest])  # fmt: skip
        interval = noise / math.sqrt(loo_spread) if noise is not None else None
        if judged and (loo * slope < 0 or interval >= abs(loo)):  # type: ignore[operator]
            out.append({**entry, "slope_per_doubling": loo * math.log(2),
                        "slope_interval": None if interval is None else interval * math.log(2)})
    return out


def _at(budget: str | None, text: str) -> str:
    return text if not budget else f"{budget[0].upper()}{budget[1:]}: {text}"


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
    for alone in trend.get("pivotal") or []:
        if alone["slope_per_doubling"] is None:
            sentences.append(f"Without {alone['key']} ({alone['kind']}) no slope can be fitted: "
                             "that candidate alone sets it.")
            continue
        spread = ("" if alone["slope_interval"] is None
                  else f" +- {100 * alone['slope_interval']:.2f}")
        sentences.append(f"Without {alone['key']} ({alone['kind']}) the slope would be "
                         f"{100 * alone['slope_per_doubling']:+.2f}{spread} points per doubling: "
                         "that one candidate sets the trend, and the verdicts at equal cost "
                         "lean on it.")
    if not result["pairs"]:
        sentences.append("No two single-dimension points to compare.")
    return _at(result.get("budget"), " ".join([head, *sentences]))


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
