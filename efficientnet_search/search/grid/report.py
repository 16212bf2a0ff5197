"""report.md of a grid run, from its results.json (regenerate any time), and its plots.

    efficientnet-search report --run_dir runs/fashion_mnist_quick

The decision comes first (chosen coefficients, whether they are a finding, what they cost,
the command that would settle a tie), then the verdicts, each naming its training budget.
The plots are `plots.py` (accuracy against measured cost at equal cost, the (beta, gamma)
plane, learning curves, verify) and `budget_report.py` (the ranking at longer training).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from efficientnet_search.config import read_yaml
from efficientnet_search.jsonio import read_json
from efficientnet_search.search import stats
from efficientnet_search.search.grid import budget_report
from efficientnet_search.search.grid import plots as plots_lib

METHOD = (
    "Seed noise is pooled over candidates (the within-candidate variances of validation "
    "accuracy, which share one proxy recipe). A candidate ties with the best when the "
    "difference of means is below the two-sided Student-t critical value times the standard "
    "error of that difference; no multiple-comparison correction, so ties are favoured over "
    "false winners. Only completed trials count; pruned and failed trials are listed apart."
)
RACING_METHOD = (
    "Racing (search.max_repeats = {max_repeats}): after the first {repeats} seed(s), each round "
    "gave one more seed to every candidate still tied with the best (the best included), "
    "judged on all seeds finished so far, until one candidate was left or each had "
    "{max_repeats} seeds. Each of the {looks} planned looks, the final best set's included, "
    "tests at {look_confidence:.2%}: 1 - {confidence:.0%} split evenly over the looks "
    "(Bonferroni), so by the union bound the race drops a candidate as good as the best with "
    "probability at most {alpha:.0%}."
)


UNDER_TRAINED = (
    "No budget check ran: depth in particular may be under-trained {budget} (a deeper network "
    "needs more steps to converge, and ResNet-RS, Bello et al. 2021, found scaling choices "
    "made on short runs can reverse at full training). Check it: `efficientnet-search verify "
    "--run_dir {run_dir} --epochs_factor 2 4`."
)
MAX_SEEDS_WORTH = 50  # beyond this many seeds a gap is too small to settle at this budget


def decision_lines(results: Mapping[str, Any], run_dir: str | Path) -> list[str]:
    """What a user reads first: the chosen coefficients, whether they are a finding, what
    the grid cost, and the command that would settle a tie (markdown bullets)."""
    best, candidates = results.get("best"), results.get("candidates") or []
    budget = (results.get("training") or {}).get("budget", "at the proxy budget")
    if not best:
        return ["## Decision", "", "- No candidate completed a trial: nothing was chosen "
                "(see Failed trials below).", ""]
    kind = next((c["kind"] for c in candidates if c["key"] == best["key"]), "compound")
    lines = ["## Decision", "",
             f"- **Chosen:** alpha={best['alpha']}, beta={best['beta']}, gamma={best['gamma']} "
             f"({best['key']}, {plots_lib.KIND_LABELS.get(kind, kind)}): mean validation accuracy "
             f"{best['val_accuracy_mean']:.4f} over {best['seeds']} seed(s), {budget}."]
    lines.append(f"- **A finding?** {_finding(results)}")
    lines.append(f"- **Cost:** {_cost(results)}")
    settle = _settle(results, Path(run_dir))
    if settle:
        lines.append(f"- **To settle it:** {settle}")
    lines.append(f"- **Budget:** {_budget_line(results, Path(run_dir), budget)}")
    return lines + [""]


def _finding(results: Mapping[str, Any]) -> str:
    best_set, candidates = results.get("best_set"), results.get("candidates") or []
    if best_set is None:
        return ("Unknown: one seed per candidate, so seed noise is unknown; nothing is a "
                "finding until search.repeats >= 2.")
    if len(candidates) == 1:
        return "No: it is the only candidate that completed, so there is nothing to beat."
    if len(best_set) == 1:
        runner = candidates[1]
        return (f"Yes: it leads the runner-up ({runner['key']}) by "
                f"{100 * (candidates[0]['mean'] - runner['mean']):.2f} points, more than seed "
                "noise.")
    others = [k for k in best_set if k != results["best"]["key"]]
    return (f"No: {len(others)} other candidate(s) are within seed noise of it "
            f"({', '.join(others)}); the grid supports that set, not this single choice.")


def _cost(results: Mapping[str, Any]) -> str:
    trials = results.get("trials") or []
    complete = sum(t["state"] == "COMPLETE" for t in trials)
    epochs = sum(t.get("epochs") or 0 for t in trials)
    minutes = sum(t.get("seconds") or 0 for t in trials) / 60
    text = (f"{len(trials)} trials ({complete} complete), {epochs:.4g} training epochs, "
            f"{minutes:.1f} trial-minutes")
    race = results.get("racing")
    if race:
        extra = [t for t in trials if t.get("round")]
        text += (f"; racing added {len(extra)} of those trials in "
                 f"{len(race['rounds']) - 1} round(s)")
    return text + "."


def _settle(results: Mapping[str, Any], run_dir: Path) -> str | None:
    """The command that would settle a tie, with about how many seeds it needs."""
    best_set, candidates = results.get("best_set"), results.get("candidates") or []
    noise = results.get("noise") or {}
    if best_set is not None and len(best_set) <= 1:
        return None
    grid = f"efficientnet-search grid --config {run_dir / 'config.yaml'} --run_dir {run_dir}"
    if best_set is None:
        return f"`{grid} --set search.max_repeats=3` (a second seed gives a noise estimate)."
    gap = candidates[0]["mean"] - candidates[1]["mean"]
    estimate = stats.Noise(noise.get("pooled_std") or math.nan, noise.get("df") or 0,
                           noise.get("confidence", 0.95))
    seeds = stats.seeds_to_separate(gap, estimate)
    have = max(c["n"] for c in candidates)
    if seeds is None or seeds > MAX_SEEDS_WORTH:
        return (f"the runner-up ({candidates[1]['key']}) is {100 * gap:.2f} points behind: "
                f"more than {MAX_SEEDS_WORTH} seeds each would be needed to separate a gap this "
                "small, so treat the tied candidates as equal here, or check them at larger "
                f"phi (`efficientnet-search verify --run_dir {run_dir} --phi 2`).")
    seeds = max(seeds, have + 1)
    return (f"`{grid} --set search.max_repeats={seeds}` races the tied candidates: about "
            f"{seeds} seeds each would separate the runner-up's gap of {100 * gap:.2f} points "
            f"(pooled seed std {100 * estimate.std:.2f}), if that gap is real. Then "
            f"`efficientnet-search verify --run_dir {run_dir} --phi 2` checks the order at "
            "larger phi.")


def _budget_line(results: Mapping[str, Any], run_dir: Path, budget: str) -> str:
    check = results.get("budget_check")
    if not check:
        return UNDER_TRAINED.format(budget=budget, run_dir=run_dir)
    return check["verdict"]


def write_report(run_dir: str | Path, results: Mapping[str, Any],
                 config: Mapping[str, Any] | None = None) -> Path:
    """Writes `run_dir/report.md` and `run_dir/plots/*.png`; returns the report's path."""
    run_dir = Path(run_dir)
    plots = run_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    names = [
        plots_lib.plot_accuracy_vs_cost(results, plots / "accuracy_vs_cost.png"),
        plots_lib.plot_plane(results, plots / "beta_gamma_plane.png"),
        plots_lib.plot_learning_curves(results, plots / "learning_curves.png"),
        plots_lib.plot_verify(results.get("verify"), plots / "verify.png"),
        budget_report.plot(results.get("budget_check"), plots / "budget.png"),
    ]
    path = run_dir / "report.md"
    path.write_text(_markdown(results, config or {}, [n for n in names if n], run_dir))
    return path


def _markdown(results: Mapping[str, Any], config: Mapping[str, Any],
              plots: Sequence[str], run_dir: Path) -> str:
    trials = results.get("trials", [])
    best, best_set = results.get("best"), results.get("best_set")
    lines = [f"# Grid search: {config.get('name', 'grid')}", ""]
    lines += decision_lines(results, run_dir)
    lines += ["## Verdict", "", f"**{results['verdict']}**", ""]
    if best:
        lines += [
            f"Best by mean: alpha={best['alpha']}, beta={best['beta']}, gamma={best['gamma']} "
            f"(val accuracy {best['val_accuracy_mean']:.4f} +- "
            f"{_fmt(best['val_accuracy_std'])} over {best['seeds']} seed(s)).", "",
        ]  # fmt: skip
    lines += _equal_cost_lines(results.get("equal_cost"), results.get("notes") or [])
    lines += ["## Candidates", "", _candidate_table(results.get("candidates", []), best_set), ""]
    lines += _rung_lines(results.get("rungs"))
    lines += _verify_lines(results.get("verify"))
    lines += budget_report.lines(results.get("budget_check"))
    lines += _compute_lines(trials, config)
    failed = [t for t in trials if t["state"] == "FAIL" and t.get("error")]
    if failed:
        lines += ["## Failed trials", ""]
        lines += [f"- trial {t['number']} {t['candidate']} seed {t['seed']}: {t['error']}"
                  for t in failed]  # fmt: skip
        lines.append("")
    lines += ["## Method", "", METHOD, ""]
    race = results.get("racing")
    if race:
        lines += [RACING_METHOD.format(**race, alpha=1 - race["confidence"]), ""]
    noise = results.get("noise", {})
    if noise.get("pooled_std") is not None:
        lines += [f"Pooled seed std: {100 * noise['pooled_std']:.2f} points "
                  f"({noise['df']} degrees of freedom, {stats.percent(noise['confidence'])}).",
                  ""]
    lines += ["Nominal cost is alpha*beta^2*gamma^2; the measured ratio counts the proxy's "
              "multiply-adds against its baseline (channel rounding to multiples of 8, ceil "
              "of repeats and integer resolution make them differ).", ""]
    lines += ["## Plots", ""] + [f"![{name}](plots/{name})" for name in plots] + [""]
    return "\n".join(lines)


def _equal_cost_lines(section: Mapping[str, Any] | None, notes: Sequence[str]) -> list[str]:
    """The verdict at equal measured cost and each candidate's residual from the trend."""
    if not section:
        return []
    lines = ["## At equal measured cost", "", f"**{section['verdict']}**", ""]
    if section["residuals"]:
        lines += [f"Residual: mean accuracy minus the fitted trend of accuracy vs "
                  f"log(measured {section['cost']} ratio), +- its seed interval; a single "
                  "dimension is above/below the trend when the residual clears it.", "",
                  f"| candidate | kind | {section['cost']} ratio | seeds | residual (points) "
                  "| at equal cost |", "|---|---|---|---|---|---|"]  # fmt: skip
        for r in section["residuals"]:
            interval = "" if r["interval"] is None else f" +- {100 * r['interval']:.2f}"
            judged = section["dimensions"].get(r["kind"], "")
            lines.append(f"| {r['key']} | {r['kind']} | {r['cost_ratio']:.3f} | {r['n']} | "
                         f"{100 * r['residual']:+.2f}{interval} | {judged} |")
        lines.append("")
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    return lines


def _verify_lines(section: Mapping[str, Any] | None) -> list[str]:
    """The families' mean accuracy at each phi (verify.py), with the verdict."""
    if not section:
        return []
    names = list(section["families"])
    lines = ["## At larger phi (verify)", "", f"**{section['verdict']}**", "",
             "Families: " + "; ".join(f"{n} {tuple(section['families'][n])}" for n in names)
             + ". Members at phi > 1 are matched in measured cost (target^phi).", "",
             "| phi | " + " | ".join(names) + " | ranking | within seed noise of the best |",
             "|" + "---|" * (len(names) + 3)]  # fmt: skip
    for row in section["rows"]:
        cells = []
        for name in names:
            stats = row["families"].get(name)
            cells.append("" if stats is None else
                         f"{stats['mean']:.4f} +- {_fmt(stats.get('std'))} ({stats['n']})")
        tied = "?" if row["best_set"] is None else ", ".join(row["best_set"])
        lines.append(f"| {row['phi']} | " + " | ".join(cells) +
                     f" | {' > '.join(row['ranking'])} | {tied} |")
    return lines + [""]


def _rung_lines(rungs: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """Candidate halving: each candidate's mean accuracy at every rung it reached."""
    if not rungs:
        return []
    header = "| candidate | " + " | ".join(
        f"rung {r['rung']} ({r['epochs']:.3g} epochs)" for r in rungs) + " |"
    means: dict[str, dict[int, str]] = {}
    for r in rungs:
        for c in r["candidates"]:
            moved = "**" if c["key"] in r["promoted"] else ""
            means.setdefault(c["key"], {})[r["rung"]] = f"{moved}{c['mean']:.4f}{moved}"
    order = sorted(means, key=lambda key: (-len(means[key]), key))
    rows = [header, "|" + "---|" * (len(rungs) + 1)]
    rows += ["| " + " | ".join([key] + [means[key].get(r["rung"], "") for r in rungs]) + " |"
             for key in order]  # fmt: skip
    return ["## Successive halving", "",
            "The candidates above are those of the last rung reached. Each rung trained every "
            "candidate that reached it, all seeds, from scratch; the best 1/"
            f"{rungs[0]['reduction_factor']} by mean (bold) moved up. Mean validation "
            "accuracy per rung:", "",
            *rows, ""]  # fmt: skip


def candidates_text(results: Mapping[str, Any]) -> str:
    """The candidates as a terminal table, best first, with their tie to the best."""
    from efficientnet_search.tables import format_table

    best_set = results.get("best_set")
    rows = []
    for rank, c in enumerate(results.get("candidates", [])):
        tie = "best" if rank == 0 else ("?" if best_set is None
                                        else "tied" if c["key"] in best_set else "worse")
        rows.append((c["key"], c["kind"], _fmt(c.get("macs_ratio"), 2), c["n"],
                     f"{c['mean']:.4f}", _fmt(c.get("std")), tie))  # fmt: skip
    return format_table(("candidate", "kind", "MACs x", "seeds", "val acc", "std", "vs best"),
                        rows)  # fmt: skip


def _candidate_table(candidates: Sequence[Mapping[str, Any]], best_set) -> str:
    header = ("| candidate | kind | alpha | beta | gamma | nominal cost | MACs ratio "
              "| activations ratio | latency ratio | params | seeds | mean val acc | std "
              "| ties best |")
    rows = [header, "|" + "---|" * 14]
    for c in candidates:
        tie = "?" if best_set is None else ("yes" if c["key"] in best_set else "no")
        rows.append(
            f"| {c['key']} | {c['kind']} | {c['alpha']} | {c['beta']} | {c['gamma']} | "
            f"{c['nominal_cost']:.3f} | {_fmt(c.get('macs_ratio'), 3)} | "
            f"{_fmt(c.get('activations_ratio'), 3)} | {_fmt(c.get('latency_ratio'), 3)} | "
            f"{c.get('params')} | {c['n']} | {c['mean']:.4f} | {_fmt(c.get('std'))} | {tie} |"
        )
    devices = {c.get("latency_device") for c in candidates} - {None}
    if devices:
        rows.append(f"\nLatency measured on {', '.join(sorted(devices))}.")
    return "\n".join(rows)


def _compute_lines(trials: Sequence[Mapping[str, Any]], config: Mapping[str, Any]) -> list[str]:
    states: dict[str, int] = {}
    for t in trials:
        states[t["state"]] = states.get(t["state"], 0) + 1
    epochs = sum(t.get("epochs") or 0 for t in trials)
    seconds = sum(t.get("seconds") or 0 for t in trials)
    rss = [t["rss_mb"] for t in trials if t.get("rss_mb")]
    lines = ["## Compute", "",
             f"Trials: {', '.join(f'{n} {s.lower()}' for s, n in sorted(states.items()))}; "
             f"{epochs:.4g} training epochs, {seconds / 60:.1f} trial-minutes."]  # fmt: skip
    if rss:
        lines.append(f"Resident memory after each trial: {min(rss):.0f}-{max(rss):.0f} MiB.")
    return lines + [""]


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def main(args) -> None:
    """CLI entry: regenerate report.md and plots from `args.run_dir/results.json`."""
    run_dir = Path(args.run_dir)
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise FileNotFoundError(f"no results.json in {str(run_dir)!r}; run a grid search first")
    results = read_json(results_path)
    config_path = run_dir / "config.yaml"
    config = read_yaml(config_path) if config_path.is_file() else {}
    path = write_report(run_dir, results, config)
    print(f"report: {path}\nplots:  {run_dir / 'plots'}")
