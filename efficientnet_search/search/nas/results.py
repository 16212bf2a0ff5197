"""The architecture search's results: the honest choice and its comparisons (pure functions).

Winner's curse: the search's best accuracy is the maximum of many noisy single-seed runs, so
it reads high. The choice is therefore made on retrained candidates (fresh seeds): the
candidate with the best mean retrained reward among the main algorithm's top-k. It is then
compared with the B0-shaped baseline and with random search's best, each retrained the same
way, using seed noise pooled over the retrained candidates (`stats.pooled_noise`, the
grid's test): a difference below the two-sided t critical difference is called a tie.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from efficientnet_search.search import stats
from efficientnet_search.search.nas.objective import pareto_front


def retrained_summaries(records: Sequence[Mapping[str, Any]], measure: str,
                        base_cost: float) -> list[dict[str, Any]]:
    """Per retrained candidate: roles, blocks, accuracies, mean, std, cost, mean score."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        if r["state"] == "COMPLETE" and r.get("val_accuracy") is not None:
            groups.setdefault(r["candidate"], []).append(r)
    out = []
    for key, group in groups.items():
        first = group[0]
        accuracies = [g["val_accuracy"] for g in group]
        summary = stats.CandidateSummary(key, "nas", 1.0, 1.0, 1.0, 1.0, None,
                                         first.get("params"), first.get("macs"),
                                         tuple(accuracies))  # fmt: skip
        out.append({
            "candidate": key, "roles": list(first.get("roles") or []),
            "blocks": list(first["blocks"]), "accuracies": accuracies, "n": summary.n,
            "val_accuracy_mean": summary.mean, "val_accuracy_std": _none(summary.std),
            "macs": first.get("macs"), "activations": first.get("activations"),
            "params": first.get("params"), "latency": _median_latency(group),
            "cost_ratio": (_median_latency(group) if measure == "latency"
                           else first[measure]) / base_cost,
            "score_mean": sum(g["score"] for g in group) / len(group),
        })  # fmt: skip
    return sorted(out, key=lambda c: -c["score_mean"])


def _median_latency(group: Sequence[Mapping[str, Any]]) -> float | None:
    """One candidate's latency: the median over its retrained seeds' timings (each timed by
    the process that trained it), None when latency was not timed."""
    timed = [g["latency"] for g in group if g.get("latency") is not None]
    return statistics.median(timed) if timed else None


def noise(summaries: Sequence[Mapping[str, Any]], confidence: float) -> stats.Noise:
    """Seed noise pooled over the retrained candidates."""
    pooled = [stats.CandidateSummary(c["candidate"], "nas", 1.0, 1.0, 1.0, 1.0, None,
                                     None, None, tuple(c["accuracies"]))
              for c in summaries]  # fmt: skip
    return stats.pooled_noise(pooled, confidence)


def compare(a: Mapping[str, Any], b: Mapping[str, Any], seed_noise: stats.Noise,
            measure: str) -> dict[str, Any]:
    """a against b: accuracy difference, what seed noise allows, cost ratio, the word."""
    difference = a["val_accuracy_mean"] - b["val_accuracy_mean"]
    needed = seed_noise.critical_difference(a["n"], b["n"])
    if needed != needed:  # NaN: noise unknown
        word = "unknown (one seed)"
    elif difference > needed:
        word = "better"
    elif difference < -needed:
        word = "worse"
    else:
        word = "tied"
    return {"accuracy_difference": difference, "needed": _none(needed), "accuracy": word,
            "cost_ratio": a[measure] / b[measure],
            "no_more_cost": a[measure] <= b[measure]}  # fmt: skip


def choose(summaries: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The searched candidate with the best mean retrained reward (None: none finished)."""
    searched = [c for c in summaries if any(r.startswith("top") for r in c["roles"])]
    return max(searched, key=lambda c: c["score_mean"], default=None)


def best_so_far(records: Sequence[Mapping[str, Any]]) -> list[float | None]:
    """The best score (the reward the searches maximize) after each slot, in slot order
    (None before any); a killed and retried slot counts once."""
    by_slot: dict[int, float | None] = {}
    for r in records:
        if r.get("slot") is not None and (r["slot"] not in by_slot or r["score"] is not None):
            by_slot[r["slot"]] = r["score"]
    best, curve = None, []
    for slot in sorted(by_slot):
        if by_slot[slot] is not None:
            best = by_slot[slot] if best is None else max(best, by_slot[slot])
        curve.append(best)
    return curve


def search_summaries(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (algorithm, search seed): counts, best, best-so-far score, and the first trial
    reaching the final best score of random search with the same search seed."""
    keys = sorted({(r["algorithm"], r["search_seed"]) for r in records})
    curves = {k: best_so_far([r for r in records if (r["algorithm"], r["search_seed"]) == k])
              for k in keys}  # fmt: skip
    out = []
    for algorithm, seed in keys:
        group = [r for r in records if (r["algorithm"], r["search_seed"]) == (algorithm, seed)]
        curve = curves[(algorithm, seed)]
        random_curve = curves.get(("random", seed), [])
        target = random_curve[-1] if random_curve else None
        reach = next((i + 1 for i, v in enumerate(curve)
                      if v is not None and target is not None and v >= target), None)
        out.append({
            "algorithm": algorithm, "search_seed": seed, "trials": len(group),
            "trained": sum(1 for r in group if r["state"] == "COMPLETE"
                           and not r.get("duplicate_of")),
            "copied": sum(1 for r in group if r.get("duplicate_of")),
            "failed": sum(1 for r in group if r["state"] == "FAIL" and r.get("error")),
            "best_score": curve[-1] if curve else None, "best_so_far": curve,
            "trials_to_random_best": reach,
        })  # fmt: skip
    return out


def front_json(records: Sequence[Mapping[str, Any]], measure: str) -> list[dict[str, Any]]:
    """The Pareto front (search accuracy vs cost) of every search, cheapest first."""
    return [{k: r.get(k) for k in ("algorithm", "search_seed", "number", "blocks",
                                   "val_accuracy", "score", "macs", "activations",
                                   "params", "latency")}
            for r in pareto_front(records, measure)]  # fmt: skip


def verdict(chosen: Mapping[str, Any] | None, vs_base: Mapping[str, Any] | None,
            vs_random: Mapping[str, Any] | None, main: str) -> str:
    """Plain sentences: did the search beat the baseline and random search?"""
    if chosen is None:
        return "No searched architecture finished retraining: there is no result to report."
    parts = [f"Chosen ({main}): {chosen['val_accuracy_mean']:.4f} +- "
             f"{_fmt(chosen['val_accuracy_std'])} over {chosen['n']} fresh seeds at "
             f"{chosen['cost_ratio']:.2f}x the baseline's cost."]
    if vs_base is not None:
        if vs_base["accuracy"] == "better" and vs_base["no_more_cost"]:
            parts.append("It beats the B0-shaped baseline beyond seed noise at no more cost.")
        else:
            parts.append(
                f"It did NOT beat the B0-shaped baseline beyond seed noise at no more cost "
                f"(accuracy {vs_base['accuracy']}, {100 * vs_base['accuracy_difference']:+.2f}"
                f" points, cost {vs_base['cost_ratio']:.2f}x).")
    if vs_random is not None and "random_best" not in chosen["roles"]:
        if vs_random["accuracy"] == "better":
            parts.append("It beats random search's best beyond seed noise.")
        else:
            parts.append(
                f"It did NOT beat random search's best on the same budget (accuracy "
                f"{vs_random['accuracy']}, {100 * vs_random['accuracy_difference']:+.2f} points).")
    elif vs_random is not None:
        parts.append("Random search found this same architecture: the search did not beat it.")
    return " ".join(parts)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _none(value: float | None) -> float | None:
    return None if value is None or value != value else value
