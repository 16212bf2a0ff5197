"""Seed statistics shared by every search: pure functions on trial records (no TensorFlow).

Records are plain dicts with at least `candidate`, `seed`, `state` and `val_accuracy` (the
grid's `grid.results.trial_record`; the NAS's retraining records). The summary groups
completed trials by candidate, gives each candidate its mean and standard deviation of
validation accuracy, picks the best by mean, and says which candidates cannot be told apart
from it.

Test used (documented in the report): seed noise is estimated once for the whole search by
pooling the within-candidate variances (every proxy has the same data, budget and recipe, so
they share one noise level; with 2 seeds per candidate a per-pair Welch test would have a
single degree of freedom and could separate nothing). A candidate is *indistinguishable* from
the best when the difference of their means is below the two-sided Student-t critical value
(`confidence`, pooled degrees of freedom) times the standard error of that difference. No
correction for multiple comparisons is applied, which keeps more candidates in the best set:
the error made is calling a real difference noise, never the reverse. With one seed per
candidate there is no noise estimate and nothing is judged.

Racing (`search.max_repeats` of the grid and of the NAS's retraining, search/racing.py):
after the first `repeats` seeds, one more seed goes to every candidate still in the best set,
round by round, until the best set is one candidate or `max_repeats` seeds are reached.
Every round's best set is a look at data that grows, so testing each look at the full level
would wrongly drop the true best more often than stated.
The rule here splits the level over the planned looks (Bonferroni: `1 - confidence` divided by
`max_repeats - repeats + 1`, the looks after each round including the final one), so by the
union bound the chance that any look drops a candidate as good as the best stays within
`1 - confidence`. (F-race, Birattari et al. 2002, races with Friedman tests on blocks of
shared instances instead; here the pooled t-test is kept, as seeds share little: issue 26.)
One planned look is the plain test above, unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from efficientnet_search.arch.scaling import nominal_cost_ratio


@dataclasses.dataclass(frozen=True)
class CandidateSummary:
    """Accuracy statistics of one candidate over its completed seeds."""

    key: str
    kind: str
    alpha: float
    beta: float
    gamma: float
    nominal_cost: float
    macs_ratio: float | None
    params: int | None
    macs: int | None
    accuracies: tuple[float, ...]
    cost_ratio: float | None = None  # by the cost that admitted it (`cost`)
    cost: str | None = None
    activations_ratio: float | None = None
    latency_ratio: float | None = None
    latency_ms: float | None = None
    latency_device: str | None = None

    @property
    def n(self) -> int:
        return len(self.accuracies)

    @property
    def mean(self) -> float:
        return sum(self.accuracies) / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        if self.n < 2:
            return math.nan
        mean = self.mean
        return math.sqrt(sum((a - mean) ** 2 for a in self.accuracies) / (self.n - 1))


@dataclasses.dataclass(frozen=True)
class Noise:
    """Seed noise pooled over candidates; `std` is NaN (and `df` 0) when it cannot be known."""

    std: float
    df: int
    confidence: float

    @property
    def known(self) -> bool:
        return self.df > 0 and math.isfinite(self.std)

    def critical_difference(self, n1: int, n2: int) -> float:
        """Smallest difference of two means (n1, n2 seeds) that is more than noise."""
        if not self.known:
            return math.nan
        return t_quantile((1 + self.confidence) / 2, self.df) * self.std * math.sqrt(
            1 / n1 + 1 / n2
        )


@dataclasses.dataclass(frozen=True)
class Summary:
    """Per-candidate statistics (best first), the noise estimate and the best set."""

    candidates: tuple[CandidateSummary, ...]
    noise: Noise
    best_set: tuple[str, ...] | None  # None: noise unknown (one seed), nothing judged

    @property
    def best(self) -> CandidateSummary | None:
        return self.candidates[0] if self.candidates else None


def summarize(records: Sequence[Mapping[str, Any]], confidence: float = 0.95) -> Summary:
    """Groups completed trials by candidate and judges which are indistinguishable."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence=}")
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        if record["state"] == "COMPLETE" and _finite(record.get("val_accuracy")):
            groups.setdefault(record["candidate"], []).append(record)
    candidates = sorted(
        (_candidate(key, group) for key, group in groups.items()),
        key=lambda c: (-c.mean, c.key),
    )
    noise = pooled_noise(candidates, confidence)
    if not candidates or not noise.known:
        return Summary(tuple(candidates), noise, None)
    best = candidates[0]
    best_set = tuple(
        c.key for c in candidates
        if best.mean - c.mean <= noise.critical_difference(best.n, c.n)
    )  # fmt: skip
    return Summary(tuple(candidates), noise, best_set)


def _candidate(key: str, group: Sequence[Mapping[str, Any]]) -> CandidateSummary:
    first = group[0]
    # A search that does not scale (the NAS's retraining) records no coefficients: 1.0 each.
    alpha, beta, gamma = (first.get(name, 1.0) for name in ("alpha", "beta", "gamma"))
    return CandidateSummary(
        key=key,
        kind=first.get("kind", "compound"),
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        nominal_cost=first.get("nominal_cost", nominal_cost_ratio(alpha, beta, gamma)),
        macs_ratio=first.get("macs_ratio"),
        params=first.get("params"),
        macs=first.get("macs"),
        accuracies=tuple(float(r["val_accuracy"]) for r in sorted(group, key=lambda r: r["seed"])),
        **{k: first.get(k) for k in ("cost_ratio", "cost", "activations_ratio", "latency_ratio",
                                     "latency_ms", "latency_device")},
    )


def pooled_noise(candidates: Sequence[CandidateSummary], confidence: float = 0.95) -> Noise:
    """Pools within-candidate variances: sum((n-1) s^2) / sum(n-1)."""
    df = sum(c.n - 1 for c in candidates if c.n > 1)
    if df == 0:
        return Noise(math.nan, 0, confidence)
    ss = sum((c.n - 1) * c.std**2 for c in candidates if c.n > 1)
    return Noise(math.sqrt(ss / df), df, confidence)


@functools.lru_cache(maxsize=256)
def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t with `df` degrees of freedom (bisection on its CDF).

    Cached: a bisection costs ~120,000 density evaluations in Python (~0.1 s), and a grid's
    report, racing rounds and budget check ask for the same few (p, df) dozens of times.
    """
    if not 0.5 <= p < 1 or df < 1:
        raise ValueError(f"need 0.5 <= p < 1 and df >= 1, got {p=}, {df=}")
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < p:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def _t_cdf(t: float, df: int, steps: int = 2000) -> float:
    # 0.5 + integral of the density over [0, t], Simpson's rule (t >= 0 here).
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(x: float) -> float:
        return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))

    h = t / steps
    total = density(0.0) + density(t)
    total += sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
    return 0.5 + total * h / 3


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def verdict(summary: Summary) -> str:
    """One honest sentence on what the grid can and cannot claim."""
    best = summary.best
    if best is None:
        return "No candidate completed a trial: there is no result to report."
    if summary.best_set is None:
        return (
            f"Best by mean is {best.key} ({best.mean:.4f}), but with one seed per candidate "
            "seed noise is unknown, so this cannot be told apart from noise: set "
            "search.repeats >= 2 before treating it as a finding."
        )
    if len(summary.candidates) == 1:
        return (
            f"{best.key} is the only candidate with completed trials ({best.mean:.4f}); "
            "there is nothing to compare it with at this budget."
        )
    worst = summary.candidates[-1]
    spread = best.mean - worst.mean
    needed = summary.noise.critical_difference(best.n, worst.n)
    if len(summary.best_set) == 1:
        head = f"{best.key} is best and its lead is larger than seed noise."
    else:
        head = (
            f"{best.key} is best by mean, but {len(summary.best_set) - 1} other candidate(s) "
            "are statistically indistinguishable from it; the grid supports the best set, "
            "not a single winner."
        )
    tail = (
        f" Best minus worst: {100 * spread:.2f} points vs {100 * needed:.2f} points needed "
        f"to exceed seed noise (pooled seed std {100 * summary.noise.std:.2f} points, "
        f"{summary.noise.df} df, {percent(summary.noise.confidence)} two-sided t)."
    )
    return head + tail


def candidate_json(candidate: CandidateSummary) -> dict[str, Any]:
    """One candidate's statistics as plain JSON (std null below two seeds)."""
    fields = {f.name: getattr(candidate, f.name) for f in dataclasses.fields(candidate)}
    return {**fields, "accuracies": list(candidate.accuracies), "n": candidate.n,
            "mean": candidate.mean, "std": nan_none(candidate.std)}  # fmt: skip


def nan_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def planned_looks(repeats: int, max_repeats: int) -> int:
    """Looks at the best set a race makes: after the first `repeats` seeds, then one per
    added seed up to `max_repeats` (1: no racing)."""
    if repeats < 1 or max_repeats < repeats:
        raise ValueError(f"need 1 <= repeats <= max_repeats, got {repeats=}, {max_repeats=}")
    return max_repeats - repeats + 1


def look_confidence(confidence: float, looks: int) -> float:
    """The confidence of each look when `1 - confidence` is split evenly over `looks`
    (Bonferroni); exactly `confidence` for one look."""
    if not 0 < confidence < 1 or looks < 1:
        raise ValueError(f"need 0 < confidence < 1 and looks >= 1, got {confidence=}, {looks=}")
    return confidence if looks == 1 else 1 - (1 - confidence) / looks


def contenders(summary: Summary) -> tuple[str, ...]:
    """The candidates a race keeps training: the best set, or every candidate while seed noise
    is unknown (one seed each: nothing can be dropped yet)."""
    if summary.best_set is None:
        return tuple(c.key for c in summary.candidates)
    return summary.best_set


def seeds_to_separate(gap: float, noise: Noise) -> int | None:
    """Seeds per candidate at which a difference of means `gap` would clear seed noise.

    Solves t * std * sqrt(2 / n) < gap for n, with the t quantile at the current degrees of
    freedom (more seeds only add df, so this errs high). None when noise is unknown or the gap
    is not positive: no number of seeds is promised then.
    """
    if not noise.known or not gap > 0:
        return None
    t = t_quantile((1 + noise.confidence) / 2, noise.df)
    return max(2, math.ceil(2 * (t * noise.std / gap) ** 2 + 1e-9))


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get their average rank); NaN below 3 pairs or when
    one side is constant."""
    if len(xs) != len(ys):
        raise ValueError(f"need paired values, got {len(xs)} and {len(ys)}")
    if len(xs) < 3:
        return math.nan
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else math.nan


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties given the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start:end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def percent(value: float) -> str:
    """A confidence as a percentage with no more digits than it has: 95%, 98.33% (racing)."""
    return f"{round(100 * value, 2):g}%"
