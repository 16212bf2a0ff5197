"""report.md and plots of an architecture search, from its results payload.

Plots (matplotlib, Agg): search accuracy against measured cost with the Pareto front, the
baseline and the chosen architecture marked (retrained means with seed error bars); the
best accuracy so far against trials for each algorithm and search seed; the chosen
architecture beside the baseline, stage by stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from efficientnet_search import plotting
from efficientnet_search.arch.blocks import decode_block_string
from efficientnet_search.search.stats import percent

COLORS = {"random": "tab:gray", "evolution": "tab:blue", "tpe": "tab:green",
          "nsga2": "tab:purple"}  # fmt: skip


def write_report(run_dir: str | Path, results: Mapping[str, Any],
                 config: Mapping[str, Any]) -> Path:
    """Writes `run_dir/report.md` and `run_dir/plots/*.png`; returns the report's path."""
    run_dir = Path(run_dir)
    plots = run_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    names = [_plot_front(results, plots / "accuracy_vs_cost.png"),
             _plot_best_so_far(results, plots / "best_so_far.png"),
             _plot_architecture(results, plots / "architecture.png")]
    path = run_dir / "report.md"
    path.write_text(_markdown(results, config, [n for n in names if n]))
    return path


def retrained_text(results: Mapping[str, Any]) -> str:
    """The retrained candidates as a terminal table, best mean reward first."""
    from efficientnet_search.tables import format_table

    measure = results["objective"]["measure"]
    rows = [(c["candidate"], ",".join(c["roles"]), c["n"], f"{c['val_accuracy_mean']:.4f}",
             _fmt(c["val_accuracy_std"]), f"{c['cost_ratio']:.2f}", f"{c['score_mean']:.4f}")
            for c in results.get("retrained", [])]  # fmt: skip
    return format_table(("candidate", "roles", "seeds", "val acc", "std",
                         f"{measure} x base", "reward"), rows)  # fmt: skip


def _markdown(results: Mapping[str, Any], config: Mapping[str, Any],
              plots: Sequence[str]) -> str:
    objective = results["objective"]
    lines = [f"# Architecture search: {config.get('name', 'nas')}", "",
             f"**{results['verdict']}**", ""]
    chosen = results.get("chosen")
    if chosen:
        lines += ["Chosen baseline (block strings):", "", "```",
                  *chosen["blocks"], "```", ""]  # fmt: skip
    lines += ["## Retrained with fresh seeds", "",
              "The search's own accuracies are single-seed maxima over many trials and read "
              "high (winner's curse), so the choice is made on these.", "",
              "| candidate | roles | seeds | mean val acc | std | "
              f"{objective['measure']} | x baseline | mean reward |", "|---" * 8 + "|"]
    for c in results.get("retrained", []):
        lines.append(f"| {c['candidate']} | {', '.join(c['roles'])} | {c['n']} | "
                     f"{c['val_accuracy_mean']:.4f} | {_fmt(c['val_accuracy_std'])} | "
                     f"{c.get(objective['measure']):,} | {c['cost_ratio']:.3f} | "
                     f"{c['score_mean']:.4f} |")  # fmt: skip
    for role, comparison in results.get("comparisons", {}).items():
        lines.append(f"\nChosen vs {role}: {100 * comparison['accuracy_difference']:+.2f} "
                     f"points ({comparison['accuracy']}; noise allows "
                     f"{_pts(comparison['needed'])}), cost {comparison['cost_ratio']:.3f}x.")
    lines += ["", "## Searches", "", "| algorithm | search seed | trials | trained | copied "
              "| failed | best search reward | trials to random's best |", "|---" * 8 + "|"]
    for s in results.get("searches", []):
        reach = s["trials_to_random_best"]
        lines.append(f"| {s['algorithm']} | {s['search_seed']} | {s['trials']} | "
                     f"{s['trained']} | {s['copied']} | {s['failed']} | "
                     f"{_fmt(s['best_score'])} | {'never' if reach is None else reach} |")
    lines += ["", "'copied': the sampled network was trained before (trained once, its "
              "result reused). 'trials to random's best': the first trial whose best-so-far "
              "search reward reached random search's final best with the same search seed "
              "(single-seed rewards: noisy).", ""]
    lines += ["## Method", "",
              f"Objective: {objective['kind']}; cost: {objective['measure']} of the proxy; "
              f"T = {objective['target']:,.0f} "
              f"({objective['target'] / objective['baseline_cost']:.3g}x the baseline), "
              f"w = {objective['exponent']} (MnasNet, Tan et al. 2019; "
              "EfficientNet's B0 search used FLOPs with T = 400M). Space: "
              f"{results['space']['architectures']:.3g} block lists.", ""]
    noise = results.get("noise", {})
    if noise.get("pooled_std") is not None:
        lines += [f"Pooled seed std of the retrained candidates: {_pts(noise['pooled_std'])} "
                  f"({noise['df']} df, {percent(noise['confidence'])} two-sided t).", ""]
    lines += [_racing_rule(results.get("racing")), ""]
    failed = [t for t in results.get("trials", []) if t["state"] == "FAIL" and t.get("error")]
    if failed:
        lines += ["## Failed trials", ""] + [
            f"- {t['algorithm']} trial {t['number']}: {t['error']}" for t in failed] + [""]
    lines += ["## Plots", ""] + [f"![{name}](plots/{name})" for name in plots] + [""]
    return "\n".join(lines)


def _racing_rule(section: Mapping[str, Any] | None) -> str:
    """The method's sentence on how many seeds each retrained candidate got, and why."""
    if not section:
        return ("Racing: none (search.max_repeats equals retrain_seeds): every retrained "
                "candidate got the same fresh seeds.")
    counts = " -> ".join(str(len(r["candidates"])) for r in section["rounds"])
    return (f"Racing (search/racing.py): after {section['repeats']} fresh seeds each, rounds "
            "of one more seed went only to the candidates whose mean accuracy was still "
            "within seed noise of the best (pooled two-sided t-test), until one was left or "
            f"each had max_repeats={section['max_repeats']}. Each of the "
            f"{section['looks']} planned looks is tested at "
            f"{percent(section['look_confidence'])}: {1 - section['confidence']:.0%} split over "
            f"the looks (Bonferroni), so the chance that the race drops a candidate as good as "
            f"the best stays within {1 - section['confidence']:.0%}; the comparisons above are "
            f"the last look. Candidates per round: {counts}.")


def _plot_front(results: Mapping[str, Any], path: Path) -> str | None:
    measure = results["objective"]["measure"]
    base_cost = results["objective"]["baseline_cost"]
    done = [t for t in results["trials"] if t["state"] == "COMPLETE"
            and t["algorithm"] != "retrain" and not t.get("duplicate_of")]
    if not done:
        return None
    fig, ax = plotting.figure(figsize=(7.5, 5))
    for algorithm in sorted({t["algorithm"] for t in done}):
        group = [t for t in done if t["algorithm"] == algorithm]
        ax.scatter([t[measure] / base_cost for t in group], [t["val_accuracy"] for t in group],
                   s=18, alpha=0.6, color=COLORS.get(algorithm), label=f"{algorithm} (search)")
    front = results.get("front", [])
    ax.plot([f[measure] / base_cost for f in front], [f["val_accuracy"] for f in front],
            "k--", lw=1, label="Pareto front (search)")
    marks = {"baseline": ("*", "tab:red", "B0-shaped baseline"),
             "chosen": ("D", "tab:orange", "chosen"),
             "random_best": ("s", "black", "random's best")}
    for key, (marker, color, label) in marks.items():
        c = results.get(key)
        if c:
            ax.errorbar(c["cost_ratio"], c["val_accuracy_mean"], yerr=c["val_accuracy_std"] or 0,
                        fmt=marker, ms=11, color=color, capsize=3,
                        label=f"{label} (retrained, {c['n']} seeds)")
    ax.axvline(results["objective"]["target"] / base_cost, color="tab:red", lw=0.8, ls=":",
               label="target T")
    ax.set_xlabel(f"{measure} relative to the B0-shaped baseline")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Searched architectures: accuracy vs measured cost")
    ax.legend(fontsize=8, loc="lower right")
    plotting.save(fig, path)
    return path.name


def _plot_best_so_far(results: Mapping[str, Any], path: Path) -> str | None:
    searches = results.get("searches", [])
    if not searches:
        return None
    fig, ax = plotting.figure(figsize=(7, 4.5))
    styles = ["-", "--", ":", "-."]
    markers = {"random": "x", "evolution": "o", "tpe": "^", "nsga2": "s"}
    for s in searches:
        curve = s["best_so_far"]
        xs = [i + 1 for i, v in enumerate(curve) if v is not None]
        ax.step(xs, [v for v in curve if v is not None], where="post", marker=markers.get(
                s["algorithm"]), ms=5, lw=2.5 if s["algorithm"] == "random" else 1.5,
                color=COLORS.get(s["algorithm"]), ls=styles[s["search_seed"] % 4], alpha=0.8,
                label=f"{s['algorithm']}, search seed {s['search_seed']}")  # fmt: skip
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("trial (budget slot)")
    ax.set_ylabel("best reward so far")
    ax.set_title("Best-so-far per algorithm (single-seed search rewards)")
    ax.legend(fontsize=8, loc="lower right")
    plotting.save(fig, path)
    return path.name


def _plot_architecture(results: Mapping[str, Any], path: Path) -> str | None:
    """Baseline and chosen, one box per stage: width ~ repeats, height ~ output channels."""
    plotting.pyplot()  # the Agg backend before matplotlib's patches load
    from matplotlib.patches import Rectangle

    rows = [("chosen", results.get("chosen")), ("B0-shaped baseline", results.get("baseline"))]
    rows = [(name, c) for name, c in rows if c]
    if not rows:
        return None
    fig, axes = plotting.figure(len(rows), 1, figsize=(11, 3.0 * len(rows)), squeeze=False)
    top = max(decode_block_string(b).filters_out for _, c in rows for b in c["blocks"])
    for ax, (name, c) in zip(axes[:, 0], rows, strict=True):
        x = 0.0
        for stage, text in enumerate(c["blocks"], 1):
            b = decode_block_string(text)
            width, height = 0.6 + 0.4 * b.repeats, 0.25 + 0.75 * b.filters_out / top
            color = "tab:orange" if b.se_ratio > 0 else "tab:cyan"
            shade = 0.3 + 0.1 * min(b.expand_ratio, 6)  # darker = wider expansion
            ax.add_patch(Rectangle((x, 0), width, height, color=color, alpha=shade))
            ax.text(x + width / 2, height + 0.05,
                    f"stage {stage}{' fused' if b.fused else ''}\nk{b.kernel_size} "
                    f"e{b.expand_ratio}\n"
                    f"se{b.se_ratio:g} r{b.repeats}\no{b.filters_out} s{b.strides}",
                    ha="center", va="bottom", fontsize=7.5)
            x += width + 0.2
        ax.set_xlim(-0.1, x)
        ax.set_ylim(0, 2.0)
        ax.axis("off")
        ax.set_title(f"{name}: box width ~ repeats, height ~ output channels, darker = more "
                     "expansion, orange = SE", fontsize=9)
    plotting.save(fig, path)
    return path.name


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _pts(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} points"
