"""Does the grid's answer hold at a longer training budget? Retrain it at k times the epochs.

A proxy's ranking belongs to its training budget: a 3x-deeper network is further from
converged after 3 epochs than a wider or higher-resolution one, and scaling choices made on
short runs can reverse at full training (Bello et al. 2021, ResNet-RS). So the budget check
retrains the grid's best set and its single-dimension points at `factor` times the proxy's
epochs, with the seeds each completed in the grid up to its first `search.repeats` (racing's
extra seeds are not retrained: the check costs what it costs on an unraced grid), and reports:

* the rank correlation (Spearman) of the candidates' mean accuracies between every two
  budgets, the grid's included;
* each budget's best set, by the grid's noise test (search/stats.py);
* the equal-cost verdicts (equal_cost.py) restated per budget on the same candidates, and
  for each pair of single dimensions whether the proxy budget's verdict holds.

    efficientnet-search verify --run_dir runs/fashion_mnist_quick --epochs_factor 2 4

Or `verify: {epochs_factor: [2, 4]}` in the grid config. Each factor is its own study in the
grid's storage (`<grid study>-budget<k>`, verify_plan.py), through the same exactly-once
queue: re-running resumes, `--workers`/`--storage` share the work. Outputs: budget.json,
budget_trials.csv, a `budget_check` section in results.json and report.md, plots/budget.png.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from absl import logging

from efficientnet_search import config as config_lib
from efficientnet_search.jsonio import write_json
from efficientnet_search.search import stats
from efficientnet_search.search.grid import equal_cost, verify_plan, worker
from efficientnet_search.search.grid import report as report_lib
from efficientnet_search.search.grid import results as results_lib


def run_budget_check(run_dir: str | Path, factors: Sequence[float], *,
                     storage: str | None = None, workers: int | None = None) -> dict[str, Any]:
    """Trains the grid's candidates at each factor (resuming), writes the outputs, returns
    the `budget_check` section. Bad input fails before anything is trained or written."""
    run_dir = Path(run_dir)
    factors = verify_plan.check_factors(factors)
    results = verify_plan.load_results(run_dir)
    config = verify_plan.load_run_config(run_dir)
    verify_plan.budget_candidates(results)  # fails when the grid has nothing to retrain
    workers = workers or config.search.workers
    threads = config.search.threads or (max(1, (os.cpu_count() or 1) // workers)
                                        if workers > 1 else None)
    epochs = (results.get("training") or {}).get("epochs") or (
        config.proxy.evaluations / config.proxy.evals_per_epoch)
    by_factor: dict[float, list[dict[str, Any]]] = {}
    for factor in factors:
        ladder = verify_plan.open_budget_ladder(config, run_dir, storage, factor)
        logging.info("budget check at %gx the proxy's epochs: %d trials", factor,
                     len(ladder.points0))  # fmt: skip
        if workers == 1 and not config.search.trials_per_process:
            worker.work(config, ladder, threads=threads)
        else:
            worker.run_local_workers(config, ladder, run_dir, storage, workers, threads,
                                     epochs_factor=factor)  # fmt: skip
        ladder.current()
        by_factor[factor] = ladder.records(ladder.rungs())
        # Written after every factor: a long check shows the shorter budgets' answer while
        # the longer ones train (and keeps it if stopped; re-running resumes).
        section = _write_outputs(run_dir, results, config, by_factor, epochs)
    print(section["verdict"])
    print(f"budget: {run_dir / 'budget.json'}\nreport: {run_dir / 'report.md'}\n"
          f"plot:   {run_dir / 'plots' / 'budget.png'}")
    return section


def _write_outputs(run_dir: Path, results: Mapping[str, Any], config: Any,
                   by_factor: Mapping[float, Sequence[Mapping[str, Any]]],
                   epochs: float) -> dict[str, Any]:
    """budget.json, budget_trials.csv, results.json's `budget_check` and report.md for the
    factors trained so far; returns the section."""
    section = summarize(results, by_factor, epochs, config.search.confidence)
    records = [dict(r, epochs_factor=f) for f, group in by_factor.items() for r in group]
    write_json(run_dir / "budget.json", {**section, "trials": records})
    results_lib.write_trials_csv(records, run_dir / "budget_trials.csv")
    updated = {**results, "budget_check": section}
    write_json(run_dir / "results.json", updated)
    report_lib.write_report(run_dir, updated, config_lib.to_dict(config))
    return section


def summarize(results: Mapping[str, Any], by_factor: Mapping[float, Sequence[Mapping[str, Any]]],
              epochs: float, confidence: float) -> dict[str, Any]:
    """Rows per budget (the grid's first), rank correlations, and the verdict."""
    chosen = verify_plan.budget_candidates(results)
    grid = [c for c in results["candidates"] if c["key"] in chosen]
    rows = [_row(1.0, epochs, grid, results.get("best_set"), results["noise"])]
    for factor, records in sorted(by_factor.items()):
        summary = stats.summarize(records, confidence)
        noise = {"pooled_std": stats.nan_none(summary.noise.std), "df": summary.noise.df,
                 "confidence": confidence}  # fmt: skip
        rows.append(_row(factor, epochs * factor,
                         [stats.candidate_json(c) for c in summary.candidates],
                         None if summary.best_set is None else list(summary.best_set), noise))
    correlations = [
        {"epochs": [a["epochs"], b["epochs"]], **_spearman(a, b)}
        for i, a in enumerate(rows) for b in rows[i + 1:]
    ]  # fmt: skip
    section = {"candidates": chosen, "rows": rows, "spearman": correlations}
    return {**section, "verdict": verdict(section)}


def _row(factor: float, epochs: float, candidates: Sequence[Mapping[str, Any]],
         best_set: Sequence[str] | None, noise: Mapping[str, Any]) -> dict[str, Any]:
    budget = results_lib.budget_label(epochs)
    kept = [{k: c.get(k) for k in ("key", "kind", "alpha", "beta", "gamma", "mean", "std", "n",
                                    "cost", "cost_ratio", "macs_ratio", "activations_ratio",
                                    "latency_ratio")} for c in candidates]  # fmt: skip
    analysis = equal_cost.analyse(kept, noise, budget)
    return {"factor": factor, "epochs": epochs, "budget": budget, "candidates": kept,
            "best_set": None if best_set is None else [k for k in best_set
                                                       if any(c["key"] == k for c in kept)],
            "pairs": analysis["pairs"], "equal_cost_verdict": analysis["verdict"]}  # fmt: skip


def _spearman(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    means_a = {c["key"]: c["mean"] for c in a["candidates"]}
    means_b = {c["key"]: c["mean"] for c in b["candidates"]}
    common = sorted(set(means_a) & set(means_b))
    rho = stats.spearman([means_a[k] for k in common], [means_b[k] for k in common])
    return {"spearman": stats.nan_none(rho), "candidates": len(common)}


def pair_outcomes(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """For each pair of single dimensions judged at the proxy budget: its outcome at every
    longer budget. A finding "holds", falls "within noise" or "reverses"; a lead within noise
    stays "still within noise", goes "beyond noise" or "reverses beyond noise"."""
    out = []
    for pair in rows[0]["pairs"]:
        names = {pair["winner"], pair["loser"]}
        outcomes = []
        for row in rows[1:]:
            later = next((p for p in row["pairs"] if {p["winner"], p["loser"]} == names), None)
            same = later is not None and later["winner"] == pair["winner"]
            if later is None:
                outcomes.append("not trained")
            elif pair["finding"]:
                outcomes.append("within noise" if not later["finding"]
                                else "holds" if same else "reverses")
            else:  # a lead within noise at the proxy's budget
                outcomes.append("still within noise" if not later["finding"]
                                else "beyond noise" if same else "reverses beyond noise")
        out.append({"winner": pair["winner"], "loser": pair["loser"],
                    "finding": pair["finding"], "outcomes": outcomes})  # fmt: skip
    return out


def verdict(section: Mapping[str, Any]) -> str:
    """Whether the ranking and each equal-cost verdict hold at the longer budgets."""
    rows = section["rows"]
    base = rows[0]["epochs"]
    later = ", ".join(f"{r['epochs']:g}" for r in rows[1:])
    parts = [f"Budget check (best set and single-dimension points, the grid's first seeds) at "
             f"{later} epochs against the proxy's {base:g}:"]
    rhos = [c for c in section["spearman"] if c["epochs"][0] == base]
    parts.append("rank correlation of mean accuracies with the proxy's " + ", ".join(
        f"{_rho(c['spearman'])} at {c['epochs'][1]:g} epochs" for c in rhos) + ".")
    for row in rows[1:]:
        best = row["candidates"][0]["key"] if row["candidates"] else "none"
        tied = row["best_set"]
        judged = ("seed noise unknown" if tied is None else "a single best" if len(tied) == 1
                  else f"{len(tied)} tied")  # fmt: skip
        parts.append(f"At {row['epochs']:g} epochs the best by mean is {best} ({judged}).")
    for pair in pair_outcomes(rows):
        how = "beats" if pair["finding"] else "leads (within noise)"
        steps = "; ".join(f"{outcome} at {row['epochs']:g}"
                          for outcome, row in zip(pair["outcomes"], rows[1:], strict=True))
        parts.append(f"{pair['winner']} {how} {pair['loser']} at {base:g} epochs: {steps}.")
    return " ".join(parts)


def _rho(value: float | None) -> str:
    return "n/a (fewer than 3 candidates)" if value is None else f"Spearman {value:+.2f}"


def main(args) -> None:
    """CLI entry (through `verify --epochs_factor`)."""
    run_budget_check(args.run_dir, args.epochs_factor, storage=getattr(args, "storage", None),
                     workers=getattr(args, "workers", None))
