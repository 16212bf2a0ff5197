"""The one-shot run's plots (PNG in the run directory, matplotlib without a display).

* `scores_vs_macs.png`: the supernet score of every scored architecture against its
  multiply-adds, coloured by the search that first proposed it, with the chosen network,
  the baseline and the calibration set marked: where the search went, and whether the
  scores simply rise with size (Ning et al. 2020's bias).
* `calibration.png`: supernet score against stand-alone accuracy (mean, with the seed
  spread where there are 2+ seeds) for the calibration set, coloured by MACs, beside MACs
  against the same accuracy: the check the report's correlations summarize.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from efficientnet_search import plotting

COLORS = {"random": "tab:gray", "evolution": "tab:blue", "tpe": "tab:green",
          "nsga2": "tab:purple", "other": "tab:olive"}  # fmt: skip


def write_plots(run_dir: str | Path, payload: Mapping[str, Any],
                records: Sequence[Mapping[str, Any]],
                entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Both plots of a run (file names written, in `run_dir`).

    Args:
      payload: the run's results (chosen, baseline, calibration).
      records: every scored architecture (`Scorer.records` values).
      entries: every search proposal, in order (the first proposer colours a record).
    """
    run_dir = Path(run_dir)
    names = [plot_scores_vs_macs(payload, records, entries, run_dir / "scores_vs_macs.png")]
    names.append(plot_calibration(payload["calibration"]["architectures"],
                                  payload["calibration"]["ranking"],
                                  run_dir / "calibration.png"))  # fmt: skip
    return [n for n in names if n]


def plot_scores_vs_macs(payload: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
                        entries: Sequence[Mapping[str, Any]], path: Path) -> str | None:
    if not records:
        return None
    first: dict[str, str] = {}
    for e in entries:
        first.setdefault(e["key"], e["algorithm"])
    fig, ax = plotting.figure(figsize=(10, 5))
    for algorithm, color in COLORS.items():
        group = [r for r in records if first.get(r["key"], "other") == algorithm]
        name = "no search (baseline)" if algorithm == "other" else algorithm
        if group:
            ax.scatter([r["macs"] / 1e6 for r in group], [r["score"] for r in group], s=12,
                       alpha=0.6, color=color, label=f"{name} ({len(group)})")
    calib = payload["calibration"]["architectures"]
    ax.scatter([a["macs"] / 1e6 for a in calib], [a["supernet"] for a in calib], s=90,
               facecolors="none", edgecolors="black", linewidths=1.2,
               label=f"calibration set ({len(calib)}, trained stand-alone)")  # fmt: skip
    for name, marker, color in (("baseline", "s", "tab:orange"), ("chosen", "*", "tab:red")):
        r = payload.get(name)
        if r:
            ax.scatter([r["macs"] / 1e6], [r["score"]], marker=marker, s=220, color=color,
                       edgecolors="black", zorder=5, label=name)  # fmt: skip
    ax.set_xlabel("multiply-adds per image (millions)")
    ax.set_ylabel("supernet score (validation accuracy, BN recalibrated)")
    ax.set_title(f"Every scored architecture ({len(records)}): supernet score vs MACs",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: no cover
    ax.grid(alpha=0.3)
    return plotting.save(fig, path).name


def plot_calibration(architectures: Sequence[Mapping[str, Any]], ranking: Mapping[str, Any],
                     path: Path) -> str | None:
    if not architectures:
        return None
    fig, axes = plotting.figure(1, 2, figsize=(11, 4.5))
    means = [statistics.fmean(a["standalone"]) for a in architectures]
    spreads = [statistics.stdev(a["standalone"]) if len(a["standalone"]) > 1 else 0.0
               for a in architectures]  # fmt: skip
    macs = [a["macs"] / 1e6 for a in architectures]
    seeds = min(len(a["standalone"]) for a in architectures)
    accuracy_label = ("stand-alone validation accuracy (mean +- seed std)" if seeds > 1
                      else "stand-alone validation accuracy (1 seed)")
    predictors = ranking["predictors"]
    for ax, values, name, short, label in (
            (axes[0], [a["supernet"] for a in architectures], "supernet", "supernet score",
             "supernet score"),
            (axes[1], macs, "macs", "MACs", "multiply-adds per image (millions)")):
        ax.errorbar(values, means, yerr=spreads, fmt="none", ecolor="gray", capsize=3)
        points = ax.scatter(values, means, c=macs, cmap="viridis", s=50, zorder=3)
        rho = predictors[name]
        low, high = rho["spearman_ci"]
        ax.set_title(f"{short}: Spearman {rho['spearman']:.2f} "
                     f"[{low:.2f}, {high:.2f}]", fontsize=10)  # fmt: skip
        ax.set_xlabel(label)
        ax.set_ylabel(accuracy_label)
        ax.grid(alpha=0.3)
    fig.colorbar(points, ax=axes, label="MACs (millions)")
    fig.suptitle(f"Calibration set ({len(architectures)} architectures trained stand-alone)",
                 fontsize=11)
    return plotting.save(fig, path).name
