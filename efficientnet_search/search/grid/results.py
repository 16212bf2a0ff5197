"""A grid's trial records and what it writes from them: results.json and trials.csv.

A trial record is a plain dict (see `TRIAL_FIELDS`): one (candidate, seed) training run,
made from its Optuna trial by `trial_record`. The statistics over records (per-candidate
means, pooled seed noise, the best set) are `search.stats`, shared with the NAS.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from efficientnet_search.arch.scaling import nominal_cost_ratio
from efficientnet_search.search import stats
from efficientnet_search.search.stats import Summary, verdict

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

TRIAL_FIELDS = (
    "number", "rung", "round", "candidate", "kind", "alpha", "beta", "gamma", "seed", "state",
    "val_accuracy", "epoch_accuracies", "epochs", "params", "macs", "macs_ratio", "nominal_cost",
    "activations", "activations_ratio", "latency_ms", "latency_ratio", "latency_spread",
    "latency_device", "cost", "cost_ratio", "resolution", "width", "depth", "seconds",
    "peak_rss_mb", "worker", "error",
    "reused_model", "time_start_s", "time_data_s", "time_build_s", "time_first_step_s",
    "time_train_s", "time_val_s", "time_write_s",
)  # fmt: skip
# Measured costs a trial carries from its queued point (grid/costs.py).
COST_FIELDS = ("macs_ratio", "activations", "activations_ratio", "latency_ms", "latency_ratio",
               "latency_spread", "latency_device", "cost", "cost_ratio")
# Where a trial's seconds went (grid/worker.py): process start and imports (a process's
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
        "round": attrs.get("round", 0),  # racing round (search/racing.py)
        "candidate": attrs.get("candidate"),
        "kind": attrs.get("kind", "compound"),
        **{k: attrs.get(k) for k in ("alpha", "beta", "gamma", "seed")},
        "state": trial.state.name,
        "val_accuracy": curve[-1][1] if curve else None,
        "epoch_accuracies": accuracies,
        "curve": [list(point) for point in curve],
        "epochs": curve[-1][0] if curve else 0,
        **{k: attrs.get(k) for k in ("params", "macs", *COST_FIELDS, "resolution", "width",
                                     "depth", "peak_rss_mb", "rss_mb", "worker", "error",
                                     "reused_model", *TIMING_FIELDS)},
        "nominal_cost": nominal_cost_ratio(attrs["alpha"], attrs["beta"], attrs["gamma"]),
        "seconds": seconds,
    }  # fmt: skip


def to_json(summary: Summary, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The results.json payload: best, best set, noise, candidates and every trial."""
    best = summary.best
    return {
        "best": None if best is None else {
            "alpha": best.alpha, "beta": best.beta, "gamma": best.gamma, "key": best.key,
            "val_accuracy_mean": best.mean, "val_accuracy_std": stats.nan_none(best.std),
            "seeds": best.n, "macs_ratio": best.macs_ratio, "nominal_cost": best.nominal_cost,
            "cost": best.cost, "cost_ratio": best.cost_ratio,
        },
        "best_set": None if summary.best_set is None else list(summary.best_set),
        "verdict": verdict(summary),
        "noise": {
            "pooled_std": stats.nan_none(summary.noise.std), "df": summary.noise.df,
            "confidence": summary.noise.confidence,
        },
        "candidates": [stats.candidate_json(c) for c in summary.candidates],
        "trials": [dict(r) for r in records],
    }  # fmt: skip


def budget_label(epochs: float) -> str:
    """Where a verdict holds: "at 3 proxy epochs" (a proxy's ranking belongs to its budget)."""
    return f"at {epochs:g} proxy epoch{'' if epochs == 1 else 's'}"


def at_budget(budget: str, text: str) -> str:
    """`text` opened by its budget: "At 3 proxy epochs: ..."."""
    return f"{budget[0].upper()}{budget[1:]}: {text}"


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
