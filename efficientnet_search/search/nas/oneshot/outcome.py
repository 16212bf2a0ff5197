"""The outcome test (issue 30): is the chosen network better, or as good for less, stand-alone?

A supernet's choice is only a proposal: its scores can rank poorly and lean toward size
(EPS; Ning et al. 2020). So after the search the chosen network, the baseline (the
B0-shaped proxy) and random search's best are each trained stand-alone with the proxy's
recipe, `oneshot.outcome_seeds` seeds each (at least 3), and the chosen network is compared
with the other two, each on its own:

* **beats beyond seed noise**: the two-sided 95% Student-t interval of the difference of
  mean accuracies (chosen minus other) lies above 0. Seed noise is `stats.pooled_noise`
  over the retrained networks (one recipe, one noise level: the grid's and the NAS's
  test, search/stats.py), so 3 networks x 3 seeds give 6 degrees of freedom.
* **non-inferior within the margin at lower measured MACs**: the interval's lower end lies
  above minus `oneshot.noninferiority_margin` points (fixed in the config before the run)
  and the chosen network has fewer counted multiply-adds. The lower end of the two-sided 95%
  interval is the usual non-inferiority bound (CONSORT's extension, Piaggio et al. 2012).
* **neither holds** otherwise; non-inferior at equal or more MACs is "neither" too, since
  costing no less was the only reason to accept a possible loss.

The two comparisons are not corrected for each other: each holds at 95% on its own. Where
the chosen network is the baseline or random search's best, that comparison is not made
and the statement says so. Pure functions (no TensorFlow): run.py trains, this judges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from efficientnet_search.search import stats

MIN_OUTCOME_SEEDS = 3  # issue 30: ">= 3 seeds"; 2 leave 1 df a network
BEATS = "beats beyond seed noise"
NONINFERIOR = "non-inferior within the margin at lower measured MACs"
NEITHER = "neither holds"
OFF = ("Outcome test off (oneshot.outcome_seeds=0): the chosen network was not retrained, so "
       "it is not shown to beat or match the baseline or random search's best.")
OTHERS = {"baseline": "the baseline", "random_best": "random search's best"}


def distinct(named: Mapping[str, Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records of `named` (chosen, baseline, random best) once per network, in order:
    two names for one network are one training."""
    seen: dict[str, Mapping[str, Any]] = {}
    for record in named.values():
        seen.setdefault(record["key"], record)
    return list(seen.values())


def judge(difference: float, half_width: float, margin: float, chosen_macs: int,
          other_macs: int) -> tuple[str, str]:
    """The verdict on one comparison and why, all in accuracy fractions.

    Args:
      difference: chosen mean minus the other's mean.
      half_width: half the two-sided interval of that difference (NaN: noise unknown).
      margin: the non-inferiority margin.
      chosen_macs, other_macs: measured multiply-adds of the two networks.
    """
    low = difference - half_width
    if not math.isfinite(low):
        return NEITHER, "seed noise unknown"
    if low > 0:
        return BEATS, ""
    if low > -margin:
        if chosen_macs < other_macs:
            return NONINFERIOR, ""
        return NEITHER, "non-inferior within the margin, but not at lower measured MACs"
    return NEITHER, (f"the interval's lower end is {100 * low:+.2f} points, below "
                     f"-{100 * margin:g}")  # fmt: skip


def outcome(named: Mapping[str, Mapping[str, Any]], accuracies: Mapping[str, Sequence[float]],
            margin_points: float) -> dict[str, Any]:
    """The outcome section of results.json.

    Args:
      named: scored records by name: `chosen`, `baseline`, `random_best` (key, macs, blocks,
        resolution).
      accuracies: stand-alone accuracies per record key, one per seed.
      margin_points: the non-inferiority margin in accuracy points.
    """
    rows = [{"candidate": key, "seed": seed, "state": "COMPLETE", "val_accuracy": accuracy}
            for key, values in accuracies.items() for seed, accuracy in enumerate(values)]
    summary = stats.summarize(rows)
    by_key = {c.key: c for c in summary.candidates}
    networks = {name: {"key": r["key"], "blocks": list(r["blocks"]),
                       "resolution": r["resolution"], "macs": r["macs"],
                       "accuracies": list(by_key[r["key"]].accuracies),
                       "mean": by_key[r["key"]].mean,
                       "std": stats.nan_none(by_key[r["key"]].std)}
                for name, r in named.items()}  # fmt: skip
    chosen = by_key[named["chosen"]["key"]]
    comparisons = {}
    for name in OTHERS:
        if name not in named:
            continue
        if named[name]["key"] == chosen.key:
            comparisons[name] = {"same_network": True, "verdict": None}
            continue
        other = by_key[named[name]["key"]]
        difference = chosen.mean - other.mean
        half = summary.noise.critical_difference(chosen.n, other.n)
        chosen_macs, other_macs = named["chosen"]["macs"], named[name]["macs"]
        verdict, reason = judge(difference, half, margin_points / 100, chosen_macs,
                                other_macs)  # fmt: skip
        bar = -margin_points / 100 if chosen_macs < other_macs else 0.0
        comparisons[name] = {
            "same_network": False, "difference_points": 100 * difference,
            "interval_points": [stats.nan_none(100 * (difference - half)),
                                stats.nan_none(100 * (difference + half))],
            "macs_ratio": chosen_macs / other_macs, "verdict": verdict, "reason": reason,
            # the bar the lower end must clear: -margin at lower MACs, else 0 (beats); the
            # seeds a network at which this difference and noise would clear it
            "bar_points": 100 * bar, "seeds_needed": (None if verdict != NEITHER else
                             stats.seeds_to_separate(difference - bar, summary.noise))}
    section = {"seeds": min(c.n for c in summary.candidates), "margin_points": margin_points,
               "confidence": summary.noise.confidence,
               "noise": {"std_points": stats.nan_none(100 * summary.noise.std),
                         "df": summary.noise.df},
               "networks": networks, "comparisons": comparisons}  # fmt: skip
    return {**section, "statement": statement(section)}


def statement(section: Mapping[str, Any]) -> str:
    """The outcome in one paragraph, as report.md and the printed summary give it."""
    networks = section["networks"]
    chosen = networks["chosen"]
    parts = []
    for name, comparison in section["comparisons"].items():
        label = OTHERS[name]
        if comparison["same_network"]:
            parts.append(f"against {label}: the chosen network **is** {label}, nothing to "
                         "compare")  # fmt: skip
            continue
        low, high = comparison["interval_points"]
        reason = f" ({comparison['reason']})" if comparison["reason"] else ""
        needed = comparison.get("seeds_needed")
        more = (f"; at this difference and noise, about {needed} seeds a network would put "
                f"the lower end above {comparison['bar_points']:g}" if needed else "")
        parts.append(
            f"against {label} ({networks[name]['mean']:.4f}): {chosen['mean']:.4f} at "
            f"{comparison['macs_ratio']:.2f}x its measured MACs, difference "
            f"{comparison['difference_points']:+.2f} points, 95% interval "
            f"[{_points(low)}, {_points(high)}]: **{comparison['verdict']}**{reason}{more}")
    noise = section["noise"]
    sd = "n/a" if noise["std_points"] is None else f"{noise['std_points']:.2f}"
    return (f"Outcome, the chosen network retrained stand-alone ({section['seeds']} seeds "
            f"a network, pooled seed SD {sd} points, {noise['df']} df; non-inferiority "
            f"margin {_count(section['margin_points'], 'point')}, fixed in the config): "
            + "; ".join(parts) + ".")


def _count(value: float, unit: str) -> str:
    return f"{value:g} {unit}" + ("" if value == 1 else "s")


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"
