"""The grid report's plots, from a results.json payload (matplotlib without a display).

Validation accuracy versus measured cost with seed error bars, the single-dimension and
paper's points marked and the fitted trend; mean accuracy over the (beta, gamma) plane; the
learning curves; the ranking at larger phi (verify). Each returns the file name it wrote, or
None when the payload holds nothing to draw.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from efficientnet_search import plotting

KIND_MARKERS = {"compound": "o", "depth": "s", "width": "^", "resolution": "D", "paper": "*"}
KIND_LABELS = {"compound": "compound", "depth": "depth only", "width": "width only",
               "resolution": "resolution only", "paper": "paper's (1.2, 1.1, 1.15)"}


def plot_verify(section: Mapping[str, Any] | None, path: Path) -> str | None:
    if not section or len(section["rows"]) < 2:
        return None
    fig, ax = plotting.figure(figsize=(7, 4.5))
    for offset, name in enumerate(section["families"]):
        rows = [r for r in section["rows"] if name in r["families"]]
        stats = [r["families"][name] for r in rows]
        ax.errorbar([r["phi"] + 0.04 * (offset - 1) for r in rows], [s["mean"] for s in stats],
                    yerr=[s.get("std") or 0.0 for s in stats], marker="o", capsize=3,
                    label=f"{name} {tuple(section['families'][name])}")  # fmt: skip
    ax.set_xticks([r["phi"] for r in section["rows"]])
    ax.set_xlabel("phi (members matched in measured cost)")
    ax.set_ylabel("validation accuracy (mean +- seed std)")
    ax.set_title("Does the phi = 1 ranking hold at larger phi?", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return plotting.save(fig, path).name


def _field(results: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], str]:
    """The candidates to draw side by side, and what budget they share.

    An exhaustive run compares every candidate at the full budget. Candidate halving trains
    only the first rung's budget for all of them, so that rung is the one fair comparison;
    the survivors of later rungs are ringed.
    """
    rungs = results.get("rungs")
    if rungs:
        return list(rungs[0]["candidates"]), f"after {rungs[0]['epochs']:.3g} epochs (first rung)"
    return list(results.get("candidates", [])), "at the full proxy budget"


def _finalists(results: Mapping[str, Any]) -> set[str]:
    """Keys of the candidates that reached the last rung (the best alone without halving)."""
    rungs = results.get("rungs")
    if rungs:
        return {c["key"] for c in rungs[-1]["candidates"]}
    return {results["best"]["key"]} if results.get("best") else set()


def _ring(ax, points: Sequence[tuple[float, float]], label: str) -> None:
    if points:
        xs, ys = zip(*points, strict=True)
        ax.scatter(xs, ys, s=260, facecolors="none", edgecolors="red", linewidths=1.5,
                   label=label, zorder=3)  # fmt: skip


def plot_accuracy_vs_cost(results: Mapping[str, Any], path: Path) -> str | None:
    field, budget = _field(results)
    section = results.get("equal_cost") or {}
    cost = section.get("cost", "macs")
    candidates = [c for c in field if c.get(f"{cost}_ratio")]
    if not candidates:
        return None
    fig, ax = plotting.figure(figsize=(7.5, 4.8))
    for kind, marker in KIND_MARKERS.items():
        chosen = [c for c in candidates if c["kind"] == kind]
        if chosen:
            ax.errorbar([c[f"{cost}_ratio"] for c in chosen], [c["mean"] for c in chosen],
                        yerr=[c["std"] or 0.0 for c in chosen], fmt=marker, capsize=3,
                        label=KIND_LABELS[kind])  # fmt: skip
    trend = section.get("trend")
    if trend and not results.get("rungs"):
        xs = sorted(c[f"{cost}_ratio"] for c in candidates)
        grid = [xs[0] * (xs[-1] / xs[0]) ** (i / 50) for i in range(51)]
        per_log = trend["slope_per_doubling"] / math.log(2)
        ax.plot(grid, [trend["intercept"] + per_log * math.log(x) for x in grid], "k--",
                alpha=0.6, label="trend (least squares on log cost)")  # fmt: skip
    finalists = _finalists(results)
    _ring(ax, [(c[f"{cost}_ratio"], c["mean"]) for c in candidates if c["key"] in finalists],
          "last rung" if results.get("rungs") else "best by mean")  # fmt: skip
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    for axis_formatter in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))  # 1.5, not 1.5 x 10^0
    ax.set_xlabel(f"measured {cost} / proxy baseline (log scale)")
    ax.set_ylabel("validation accuracy (mean +- seed std)")
    ax.set_title(f"Accuracy versus measured cost at phi = 1, {budget}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return plotting.save(fig, path).name


def plot_plane(results: Mapping[str, Any], path: Path) -> str | None:
    candidates, budget = _field(results)
    if not candidates:
        return None
    fig, ax = plotting.figure(figsize=(6, 5))
    where = _side_by_side(candidates)
    points = ax.scatter([where[c["key"]][0] for c in candidates],
                        [where[c["key"]][1] for c in candidates],
                        c=[c["mean"] for c in candidates], cmap="viridis", s=120)  # fmt: skip
    ax.margins(x=0.08, y=0.1)  # room for the labels beside the outermost points
    for point, group in _by_point(candidates).items():  # one label a point
        text = "a=" + ", ".join(f"{c['alpha']:g}" for c in group)
        if len(group) == 1:
            ax.annotate(text, point, fontsize=7, textcoords="offset points", xytext=(5, 5))
        else:  # under the pair, clear of a neighbour's label above and to the right
            ax.annotate(text, point, fontsize=7, textcoords="offset points", xytext=(0, -14),
                        ha="center")  # fmt: skip
    finalists = _finalists(results)
    _ring(ax, [where[c["key"]] for c in candidates if c["key"] in finalists],
          "last rung" if results.get("rungs") else "best by mean")  # fmt: skip
    fig.colorbar(points, label="mean validation accuracy")
    ax.set_xlabel("beta (width)")
    ax.set_ylabel("gamma (resolution)")
    ax.set_title(f"Accuracy over (beta, gamma), {budget}\nalpha from the budget", fontsize=10)
    ax.legend(loc="best", fontsize=8)
    return plotting.save(fig, path).name


def _side_by_side(candidates: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, float]]:
    """Where each candidate is drawn on the (beta, gamma) plane: candidates that differ only in
    alpha share a point, so they are set side by side along beta (in alpha order), 6% of the
    plotted beta range apart, instead of hiding each other."""
    betas = [c["beta"] for c in candidates]
    step = 0.06 * max(max(betas) - min(betas), 0.1)
    where = {}
    for (beta, gamma), group in _by_point(candidates).items():
        for i, c in enumerate(group):
            where[c["key"]] = (beta + step * (i - (len(group) - 1) / 2), gamma)
    return where


def _by_point(candidates: Sequence[Mapping[str, Any]]
              ) -> dict[tuple[float, float], list[Mapping[str, Any]]]:
    """Candidates grouped by their (beta, gamma), each group in alpha order."""
    groups: dict[tuple[float, float], list[Mapping[str, Any]]] = {}
    for c in sorted(candidates, key=lambda c: c["alpha"]):
        groups.setdefault((c["beta"], c["gamma"]), []).append(c)
    return groups


def plot_learning_curves(results: Mapping[str, Any], path: Path) -> str | None:
    """Validation accuracy against epochs trained, one labelled colour per candidate: the
    mean over its seeds, each seed faint beside it. A halving search restarts its
    survivors for longer, so their line runs on through the later rungs' budgets. Not drawn
    when no candidate was validated at two budgets (`search.validation: needed` without a
    pruner): the candidate table holds everything such a plot would show."""
    trials = [t for t in results.get("trials", []) if t.get("curve") and t.get("candidate")]
    curves = _seed_curves(trials)
    means = {key: _mean_curve(seeds) for key, seeds in curves.items()}
    if not any(len(mean) > 1 for mean in means.values()):
        return None
    kinds = {t["candidate"]: t.get("kind", "compound") for t in trials}
    fig, ax = plotting.figure(figsize=(8, 4.8))
    colors = plotting.pyplot().get_cmap("tab10" if len(curves) <= 10 else "tab20")
    for index, key in enumerate(_furthest_best_first(means)):
        color, kind = colors(index % colors.N), kinds[key]
        for curve in curves[key].values():
            xs = sorted(curve)
            ax.plot(xs, [curve[x] for x in xs], "-", color=color, alpha=0.25, linewidth=0.8)
        xs = sorted(means[key])
        ax.plot(xs, [means[key][x] for x in xs], "-",
                marker=KIND_MARKERS.get(kind, "o"), color=color, markersize=5,
                label=f"{key} ({'paper' if kind == 'paper' else KIND_LABELS.get(kind, kind)})")
    if all(float(x).is_integer() for mean in means.values() for x in mean):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no 1.25 epochs
    ax.set_xlabel("epochs trained")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Validation accuracy during training (mean of seeds; faint: each seed)",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(alpha=0.3)
    return plotting.save(fig, path).name


def _seed_curves(trials: Sequence[Mapping[str, Any]]) -> dict[str, dict[Any, dict[float, float]]]:
    """Per candidate and seed: validation accuracy by epochs trained, over every rung (a
    restart with the same seed repeats the shorter run, so a budget met twice holds one
    value)."""
    curves: dict[str, dict[Any, dict[float, float]]] = {}
    for t in trials:
        curve = curves.setdefault(t["candidate"], {}).setdefault(t.get("seed"), {})
        curve.update((round(float(x), 6), float(y)) for x, y in t["curve"])
    return curves


def _mean_curve(seeds: Mapping[Any, Mapping[float, float]]) -> dict[float, float]:
    """The mean over seeds at each budget any seed reached."""
    budgets = sorted({x for curve in seeds.values() for x in curve})
    return {x: statistics.fmean(c[x] for c in seeds.values() if x in c) for x in budgets}


def _furthest_best_first(means: Mapping[str, Mapping[float, float]]) -> list[str]:
    """Candidate keys, those trained longest first (a halving's survivors), then by their
    mean accuracy at that budget: the legend's order."""
    def rank(key: str) -> tuple[float, float]:
        last = max(means[key])
        return -last, -means[key][last]

    return sorted(means, key=rank)
