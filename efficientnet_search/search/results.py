"""Noise-aware summaries of a grid search: pure functions on trial records (no TensorFlow).

A trial record is a plain dict (see `TRIAL_FIELDS`): one (candidate, seed) training run,
made from its Optuna trial by `trial_record`. The summary groups completed trials by
candidate, gives each candidate its mean and standard deviation of validation accuracy, picks
the best by mean, and says which candidates cannot be told apart from it.

Test used (documented in the report): seed noise is estimated once for the whole grid by
pooling the within-candidate variances (every proxy has the same data, budget and recipe, so
they share one noise level; with 2 seeds per candidate a per-pair Welch test would have a
single degree of freedom and could separate nothing). A candidate is *indistinguishable* from
the best when the difference of their means is below the two-sided Student-t critical value
(`confidence`, pooled degrees of freedom) times the standard error of that difference. No
correction for multiple comparisons is applied, which keeps more candidates in the best set:
the error made is calling a real difference noise, never the reverse. With one seed per
candidate there is no noise estimate and nothing is judged.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from efficientnet_search.arch.scaling import nominal_cost_ratio

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

TRIAL_FIELDS = (
    "number", "rung", "candidate", "kind", "alpha", "beta", "gamma", "seed", "state",
    "val_accuracy", "epoch_accuracies", "epochs", "params", "macs", "macs_ratio", "nominal_cost",
    "resolution", "width", "depth", "seconds", "peak_rss_mb", "worker", "error",
    "reused_model", "time_start_s", "time_data_s", "time_build_s", "time_first_step_s",
    "time_train_s", "time_val_s", "time_write_s",
)  # fmt: skip
# Where a trial's seconds went (search/worker.py): process start and imports (a process's
# first trial only), data load and resize, model build, the first training step (tracing),
# the other training steps, validation passes, recording the result.
TIMING_FIELDS = ("time_start_s", "time_data_s", "time_build_s", "time_first_step_s",
                 "time_train_s", "time_val_s", "time_write_s")


def trial_record(trial: FrozenTrial) -> dict[str, Any]:
    """A plain record of one grid trial (see TRIAL_FIELDS) from its Optuna trial."""
    attrs = trial.user_attrs
    accuracies = list(attrs.get("epoch_accuracies", []))
    curve = [tuple(point) for point in attrs.get("curve") or enumerate(accuracies, 1)]
    seconds = attrs.get("seconds")
    if seconds is None and trial.datetime_complete and trial.datetime_start:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return {
        "number": trial.number,
        "rung": attrs.get("rung", 0),
        "candidate": attrs.get("candidate"),
        "kind": attrs.get("kind", "compound"),
        **{k: attrs.get(k) for k in ("alpha", "beta", "gamma", "seed")},
        "state": trial.state.name,
        "val_accuracy": curve[-1][1] if curve else None,
        "epoch_accuracies": accuracies,
        "curve": [list(point) for point in curve],
        "epochs": curve[-1][0] if curve else 0,
        **{k: attrs.get(k) for k in ("params", "macs", "macs_ratio", "resolution", "width",
                                     "depth", "peak_rss_mb", "rss_mb", "worker", "error",
                                     "reused_model", *TIMING_FIELDS)},
        "nominal_cost": nominal_cost_ratio(attrs["alpha"], attrs["beta"], attrs["gamma"]),
        "seconds": seconds,
    }  # fmt: skip


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
    return CandidateSummary(
        key=key,
        kind=first.get("kind", "compound"),
        alpha=first["alpha"],
        beta=first["beta"],
        gamma=first["gamma"],
        nominal_cost=first.get("nominal_cost",
                               nominal_cost_ratio(first["alpha"], first["beta"], first["gamma"])),
        macs_ratio=first.get("macs_ratio"),
        params=first.get("params"),
        macs=first.get("macs"),
        accuracies=tuple(float(r["val_accuracy"]) for r in sorted(group, key=lambda r: r["seed"])),
    )


def pooled_noise(candidates: Sequence[CandidateSummary], confidence: float = 0.95) -> Noise:
    """Pools within-candidate variances: sum((n-1) s^2) / sum(n-1)."""
    df = sum(c.n - 1 for c in candidates if c.n > 1)
    if df == 0:
        return Noise(math.nan, 0, confidence)
    ss = sum((c.n - 1) * c.std**2 for c in candidates if c.n > 1)
    return Noise(math.sqrt(ss / df), df, confidence)


def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t with `df` degrees of freedom (bisection on its CDF)."""
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
        f"{summary.noise.df} df, {summary.noise.confidence:.0%} two-sided t)."
    )
    return head + tail


def to_json(summary: Summary, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The results.json payload: best, best set, noise, candidates and every trial."""
    best = summary.best
    return {
        "best": None if best is None else {
            "alpha": best.alpha, "beta": best.beta, "gamma": best.gamma, "key": best.key,
            "val_accuracy_mean": best.mean, "val_accuracy_std": _nan_none(best.std),
            "seeds": best.n, "macs_ratio": best.macs_ratio, "nominal_cost": best.nominal_cost,
        },
        "best_set": None if summary.best_set is None else list(summary.best_set),
        "verdict": verdict(summary),
        "noise": {
            "pooled_std": _nan_none(summary.noise.std), "df": summary.noise.df,
            "confidence": summary.noise.confidence,
        },
        "candidates": [candidate_json(c) for c in summary.candidates],
        "trials": [dict(r) for r in records],
    }  # fmt: skip


def candidate_json(candidate: CandidateSummary) -> dict[str, Any]:
    """One candidate's statistics as plain JSON (std null below two seeds)."""
    fields = {f.name: getattr(candidate, f.name) for f in dataclasses.fields(candidate)}
    return {**fields, "accuracies": list(candidate.accuracies), "n": candidate.n,
            "mean": candidate.mean, "std": _nan_none(candidate.std)}  # fmt: skip


def _nan_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def write_trials_csv(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Writes one row per trial; list fields are joined with spaces."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TRIAL_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            row = dict(record)
            row["epoch_accuracies"] = " ".join(
                f"{a:.5f}" for a in record.get("epoch_accuracies") or ()
            )
            writer.writerow(row)
    return path
