"""report.md of a one-shot run: the choice and its outcome test, the searches, and the ranking
check beside cost."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from efficientnet_search.search.nas.oneshot import ranking as ranking_lib
from efficientnet_search.search.nas.oneshot.outcome import OFF


def write_report(path: str | Path, payload: dict[str, Any]) -> Path:
    """Writes the report of results payload `payload` (run.py) to `path`."""
    path = Path(path)
    path.write_text("\n".join(report_lines(payload)) + "\n")
    return path


def report_lines(payload: dict[str, Any]) -> list[str]:
    calib = payload["calibration"]
    ranking = calib["ranking"]
    lines = [
        "# One-shot architecture search", "", payload["verdict"], "",
        *outcome_lines(payload.get("outcome")),
        f"{payload['scored']} distinct architectures scored by the supernet (every one in "
        "scored.csv: block strings, resolution, score, MACs, params, activations); "
        f"resolutions {payload['resolutions']}.", "",
        "| | supernet score | reward | MACs | params | resolution | blocks |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("chosen", "evolution_best", "random_best", "tpe_best", "nsga2_best",
                 "baseline"):  # fmt: skip
        r = payload.get(name)
        if r:
            lines.append(f"| {name} | {r['score']:.4f} | {_f(r.get('fitness'))} | "
                         f"{r['macs']:,} | {r['params']:,} | {r['resolution']} | "
                         f"{' '.join(r['blocks'])} |")  # fmt: skip
    lines += [
        "", f"## Does the supernet rank like stand-alone training? ({ranking['n']} "
        "architectures spread over MACs, trained stand-alone with the proxy's recipe)", "",
        "| predictor | Spearman | 95% CI | Kendall tau-b | 95% CI |", "|---|---|---|---|---|",
    ]
    for name, stats in ranking["predictors"].items():
        lines.append(f"| {name} | {_f(stats['spearman'])} | {_ci(stats['spearman_ci'])} | "
                     f"{_f(stats['kendall'])} | {_ci(stats['kendall_ci'])} |")  # fmt: skip
    ceiling = ranking.get("seed_to_seed")
    if ceiling:
        lines += ["", f"Ceiling: stand-alone seed 0 against seed 1, Spearman "
                      f"{_f(ceiling['spearman'])} {_ci(ceiling['spearman_ci'])}; no predictor "
                      "can rank a single seed's accuracies better than another seed does."]
    gain = ranking.get("supernet_minus_cost")
    if gain:
        lines += ["", f"Supernet Spearman minus the best |Spearman| of MACs or params alone: "
                      f"{_f(gain['gain'])} (paired bootstrap 95% CI {_ci(gain['ci'])}). "
                      + _gain_verdict(gain)]
    if ranking.get("supernet_given_cost"):  # runs before session 18 lack it
        lines += ["", ranking_lib.given_cost_sentence(ranking["supernet_given_cost"])]
    if ranking.get("within_bins"):
        lines += within_bins_lines(ranking["within_bins"], ranking["n"])
    lines += ["", "| blocks | resolution | MACs | supernet | log synflow | stand-alone (per "
                  "seed) |", "|---|---|---|---|---|---|"]
    for a in calib["architectures"]:
        lines.append(f"| {' '.join(a['blocks'])} | {a['resolution']} | {a['macs']:,} | "
                     f"{a['supernet']:.4f} | {_f(a.get('synflow'))} | "
                     f"{', '.join(f'{x:.4f}' for x in a['standalone'])} |")
    check = payload.get("latency_table")
    if check:
        errors = ", ".join(f"{100 * n['error']:+.0f}%" for n in check["networks"])
        lines += ["", f"Latency from a per-block table ({check['pieces']} pieces timed on "
                      f"{check['device']}, batch {check['batch_size']}; latency_table.csv). "
                      f"Against whole-network timing of {len(check['networks'])} networks "
                      f"spread over MACs, the table's error is {errors or 'not checked'} "
                      f"(median |error| {_pct(check['median_abs_error'])}; Spearman "
                      f"{_f(check['spearman'])})."]  # fmt: skip
    if payload.get("plots"):
        lines += ["", "Plots: " + ", ".join(f"[{n}]({n})" for n in payload["plots"]) + " "
                      "(every scored architecture's score against MACs with the chosen one and "
                      "the calibration set marked; supernet score and MACs against stand-alone "
                      "accuracy)."]  # fmt: skip
    seconds = payload.get("seconds", {})
    lines += ["", f"Time: supernet {seconds.get('supernet')} s, search {seconds.get('search')} "
                  f"s, calibration {seconds.get('calibration')} s, outcome test "
                  f"{seconds.get('outcome')} s (this run, this machine)."]
    return lines


def outcome_lines(section: dict[str, Any] | None) -> list[str]:
    """The outcome test (outcome.py): the decision a user reads first, after the choice."""
    if not section:
        return ["## Outcome", "", OFF, ""]
    lines = ["## Outcome: the chosen network retrained stand-alone", "", section["statement"],
             "", "| network | MACs | stand-alone (per seed) | mean | seed SD | resolution | "
             "blocks |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, n in section["networks"].items():
        sd = "n/a" if n["std"] is None else f"{n['std']:.4f}"
        lines.append(f"| {name} | {n['macs']:,} | "
                     f"{', '.join(f'{a:.4f}' for a in n['accuracies'])} | {n['mean']:.4f} | "
                     f"{sd} | {n['resolution']} | {' '.join(n['blocks'])} |")
    lines += ["", f"Test: the difference of mean accuracies with its two-sided "
                  f"{100 * section['confidence']:g}% Student-t interval, seed noise pooled "
                  "over the retrained networks (search/stats.py). Beats: the interval lies "
                  "above 0. Non-inferior: its lower end lies above minus the margin and the "
                  "chosen network has fewer measured MACs. Each comparison holds on its own "
                  "(no correction for making two). Trainings: outcome.csv.", ""]
    return lines


def within_bins_lines(within: dict[str, Any], n: int) -> list[str]:
    """The within-equal-MACs-bins section (bins.py says how bins are cut and why)."""
    sizes = ", ".join(str(k) for k in within["sizes"])
    count = f"{within['bins']} bin" + ("s" if within["bins"] > 1 else "")
    lines = ["", f"## Within equal-MACs bins ({count}: {sizes} architectures)", "",
             f"The calibration set sorted by MACs and cut into {n} // 4 = {count} "
             "of equal count (four is the fewest architectures whose Spearman takes "
             "more than a handful of values); within a bin MACs barely differ, so size alone "
             "cannot explain a ranking there (Ning et al. 2020: supernet scores lean toward "
             "size). Statistics are the size-weighted mean over bins; intervals a bootstrap "
             "within bins."]  # fmt: skip
    if within["bins"] == 1:
        lines += ["", f"One bin: {n} architectures are too few to split, so this is the whole "
                      "set again; a calibration_size of at least 8 gives two bins."]
    lines += ["", "| predictor | Spearman | 95% CI | Kendall tau-b | 95% CI |",
              "|---|---|---|---|---|"]
    for name, stats in within["predictors"].items():
        lines.append(f"| {name} | {_f(stats['spearman'])} | {_ci(stats['spearman_ci'])} | "
                     f"{_f(stats['kendall'])} | {_ci(stats['kendall_ci'])} |")  # fmt: skip
    gain = within.get("supernet_minus_cost")
    if gain:
        lines += ["", f"Within bins, supernet Spearman minus the best |Spearman| of MACs or "
                      f"params alone: {_f(gain['gain'])} (95% CI {_ci(gain['ci'])}). "
                      + ("The supernet ranks architectures of equal MACs better than cost "
                         "alone: a finding." if gain["finding"] else
                         "Within equal-MACs bins the supernet does **not** beat MACs/params "
                         "alone: its ranking there, and the choice it makes, are **not a "
                         "finding**.")]  # fmt: skip
    return lines


def _gain_verdict(gain) -> str:
    """What the paired interval of (supernet - cost) Spearman says, in one sentence."""
    if gain["finding"]:
        return "The supernet ranks better than cost alone: a finding."
    low, high = gain["ci"]
    if high is not None and high < 0:
        return ("The whole interval is below 0: cost alone ranks **better** than the supernet; "
                "its ranking is **not a finding**, and neither is the choice it makes.")
    return ("The interval does not exclude 0: the supernet's ranking is **not a finding** "
            "(cost alone ranks as well), and neither is the choice it makes.")


def _f(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.3f}"


def _pct(value) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.0f}%"


def _ci(pair) -> str:
    return f"[{_f(pair[0])}, {_f(pair[1])}]"
