"""report.md of a gridshot run: supernet scores beside stand-alone accuracy, and whether
the supernet ranks the grid better than its cost alone."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from efficientnet_search.search.nas.oneshot import ranking


def write_report(path: str | Path, payload: dict[str, Any]) -> Path:
    """Writes the report of results payload `payload` (run.py) to `path`."""
    path = Path(path)
    path.write_text("\n".join(report_lines(payload)) + "\n")
    return path


def report_lines(payload: dict[str, Any]) -> list[str]:
    low, high = payload["cost_ratio"]
    lines = [
        "# The scaling grid scored from a supernet", "", payload["verdict"], "",
        f"{payload['points']} grid points (step {payload['step']:g}, measured "
        f"{payload['cost']} {low:.2f}x-{high:.2f}x the proxy baseline, single-dimension and "
        f"paper's points included) build {payload['networks']} distinct networks, each scored "
        "once by the supernet after batch-norm recalibration (grid_scores.csv: every point, "
        "its network's score and rank, its costs; scored.csv: per network). The points below "
        "were then trained stand-alone through the grid's queue (standalone/: the grid's "
        "results.json, trials.csv and report).", "",
        "| point | kind | cost ratio | supernet score (rank) | stand-alone mean | per seed |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(payload["standalone"], key=lambda r: -r["mean"]):
        lines.append(f"| {r['key']} | {r['kind']} | {r['cost_ratio']:.2f} | "
                     f"{r['score']:.4f} ({r['rank']}) | {r['mean']:.4f} | "
                     f"{', '.join(f'{a:.4f}' for a in r['standalone'])} |")  # fmt: skip
    comparison = payload.get("ranking")
    if comparison:
        lines += ["", f"## Does the supernet rank the grid like stand-alone training? "
                      f"({comparison['n']} points)", "",
                  "| predictor | Spearman | 95% CI | Kendall tau-b | 95% CI |",
                  "|---|---|---|---|---|"]
        for name, stats in comparison["predictors"].items():
            lines.append(f"| {name} | {_f(stats['spearman'])} | {_ci(stats['spearman_ci'])} "
                         f"| {_f(stats['kendall'])} | {_ci(stats['kendall_ci'])} |")
        ceiling = comparison.get("seed_to_seed")
        if ceiling:
            lines += ["", f"Ceiling: stand-alone seed 0 against seed 1, Spearman "
                          f"{_f(ceiling['spearman'])} {_ci(ceiling['spearman_ci'])}."]
        gain = comparison["supernet_minus_cost"]
        lines += ["", f"Supernet Spearman minus the best |Spearman| of MACs or params alone: "
                      f"{_f(gain['gain'])} (paired bootstrap 95% CI {_ci(gain['ci'])}). "
                      + ("Above 0: the supernet ranks the grid better than cost alone, a "
                         "finding." if gain["finding"] else "The interval does not lie above "
                         "0: the supernet's ranking is **not a finding**.")]
        if comparison.get("supernet_given_cost"):  # runs before session 18 lack it
            lines += ["", ranking.given_cost_sentence(comparison["supernet_given_cost"])]
    best = payload["supernet_best"]
    ties = payload["standalone_best_set"]
    lines += ["", f"The supernet's best point: {best['key']} (score {best['score']:.4f}, cost "
                  f"ratio {best['cost_ratio']:.2f}); "
                  + (("in" if payload["best_in_best_set"] else "**not** in")
                     + " the stand-alone best set (the grid's t-test ties: " + ", ".join(ties)
                     + ")." if ties else "no stand-alone best set (one seed: no noise).")]
    seconds = payload.get("seconds", {})
    loss = payload["supernet_loss"]
    resumed = seconds.get("resumed_at_step")
    when = ("this invocation, on this machine; it resumed the run at supernet step "
            f"{resumed}, so the time of the invocations before it is not in these figures"
            if resumed else "this run, this machine")
    lines += ["", f"Supernet: {loss['steps']} sandwich steps this invocation (loss "
                  f"{_f(loss['first'])} to {_f(loss['last'])}). Time: supernet "
                  f"{seconds.get('supernet')} s, scoring {seconds.get('scoring')} s, "
                  f"stand-alone {seconds.get('standalone')} s ({when})."]
    return lines


def _f(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.3f}"


def _ci(pair) -> str:
    return f"[{_f(pair[0])}, {_f(pair[1])}]"
