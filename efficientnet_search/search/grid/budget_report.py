"""The budget check's part of report.md and its plot (budget.py computes the section)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from efficientnet_search import plotting

KIND_MARKERS = {"compound": "o", "depth": "s", "width": "^", "resolution": "D", "paper": "*"}


def lines(section: Mapping[str, Any] | None) -> list[str]:
    """Mean accuracy of each candidate at every budget, rank correlations, and each budget's
    equal-cost verdict on the same candidates."""
    if not section:
        return []
    rows = section["rows"]
    header = ("| candidate | kind | " + " | ".join(f"{r['epochs']:g} epochs" for r in rows)
              + " |")
    out = ["## At longer training (budget check)", "", f"**{section['verdict']}**", "",
           "Mean validation accuracy +- seed std (seeds); the first column is the grid itself.",
           "", header, "|" + "---|" * (len(rows) + 2)]  # fmt: skip
    kinds = {c["key"]: c["kind"] for r in rows for c in r["candidates"]}
    for key in section["candidates"]:
        cells = []
        for row in rows:
            c = next((c for c in row["candidates"] if c["key"] == key), None)
            tied = c is not None and row["best_set"] is not None and key in row["best_set"]
            cells.append("" if c is None else f"{'**' if tied else ''}{c['mean']:.4f}"
                         f"{'**' if tied else ''} +- {_fmt(c.get('std'))} ({c['n']})")
        out.append(f"| {key} | {kinds.get(key, '')} | " + " | ".join(cells) + " |")
    out += ["", "Bold: within seed noise of that budget's best.", "",
            "Spearman rank correlation of the candidates' means between budgets: " + "; ".join(
                f"{a:g} vs {b:g} epochs "
                f"{'n/a' if c['spearman'] is None else format(c['spearman'], '+.2f')}"
                for c in section["spearman"] for a, b in [c["epochs"]]) + ".", ""]
    out += ["Equal-cost verdicts restated per budget (trend refitted on these candidates):", ""]
    out += [f"- {row['equal_cost_verdict']}" for row in rows]
    return out + [""]


def plot(section: Mapping[str, Any] | None, path: Path) -> str | None:
    """Mean accuracy (+- seed std) against epochs trained, one labelled line per candidate."""
    if not section or len(section["rows"]) < 2:
        return None
    rows = section["rows"]
    fig, ax = plotting.figure(figsize=(8.5, 4.8))
    colors = plotting.pyplot().get_cmap("tab10")
    spread = 0.015 * (len(section["candidates"]) - 1)
    for index, key in enumerate(section["candidates"]):
        found = [(r["epochs"], c) for r in rows for c in r["candidates"] if c["key"] == key]
        if not found:
            continue
        shift = 1 + (index * 0.03 - spread)  # side by side in log x, so error bars stay apart
        kind = found[0][1]["kind"]
        ax.errorbar([e * shift for e, _ in found], [c["mean"] for _, c in found],
                    yerr=[c.get("std") or 0.0 for _, c in found], color=colors(index % 10),
                    marker=KIND_MARKERS.get(kind, "o"), capsize=3, label=f"{key} ({kind})",
                    markersize=10 if kind == "paper" else 6)  # a star reads small at 6
    ax.set_xscale("log")
    ax.set_xticks([r["epochs"] for r in rows])
    ax.set_xticklabels([f"{r['epochs']:g}" for r in rows])
    ax.minorticks_off()
    ax.set_xlabel("epochs trained (log scale; first: the grid's proxy budget)")
    ax.set_ylabel("validation accuracy (mean +- seed std)")
    ax.set_title("Does the grid's ranking hold at longer training?", fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(alpha=0.3)
    return plotting.save(fig, path).name


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}"
