"""Does the grid's answer hold at larger phi? Train phi=2, 3 members of three families.

Small models and short runs can rank scaling choices differently from larger ones (Bello et
al. 2021, ResNet-RS), so the phi=1 winner is checked further up: from the found coefficients,
the paper's (1.2, 1.1, 1.15) and the best single-dimension alternative, build each family's
member at phi (alpha^t, beta^t, gamma^t with t near phi, solved so that every member costs
target^phi times the proxy baseline by the grid's measured cost: equal cost again), train each
with the grid's proxy recipe and seeds, and report whether the phi=1 ranking survives, with
the same noise statistics as the grid (search/stats.py) at each phi.

    efficientnet-search verify --run_dir runs/fashion_mnist_quick --phi 2 3

Or a `verify: {phi: [2]}` section in the grid config, run after the grid. Trials go through
the same queue as the grid (a study `<grid study>-verify` in the same storage): re-running
resumes, and `--workers`/`--storage` share the work. Outputs go into the run directory:
`verify.json`, `verify_trials.csv`, a verify section in results.json and report.md, and
plots/verify.png.
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
from efficientnet_search.search.grid import plan, verify_plan, worker
from efficientnet_search.search.grid import report as report_lib
from efficientnet_search.search.grid import results as results_lib
from efficientnet_search.search.grid import rungs as rungs_lib
from efficientnet_search.search.grid.config import GridConfig
from efficientnet_search.search.grid.verify_plan import families, load_results, load_run_config
from efficientnet_search.search.grid.verify_plan import open_ladder as open_verify_ladder


def run_verify(run_dir: str | Path, phis: Sequence[int], *, storage: str | None = None,
               workers: int | None = None) -> dict[str, Any]:
    """Trains the members at `phis` (resuming), writes the verify outputs, returns them."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    config = load_run_config(run_dir)
    phis = sorted(set(phis))
    if not phis or min(phis) < 2:
        raise ValueError(f"verify needs phi values >= 2 (phi=1 is the grid), got phi={phis}")
    families(results)  # fails before any work when the grid has nothing to verify
    workers = workers or config.search.workers
    threads = config.search.threads or (max(1, (os.cpu_count() or 1) // workers)
                                        if workers > 1 else None)
    ladder = open_verify_ladder(config, run_dir, storage, phis)
    logging.info("verify at phi %s: %d trials", phis, len(ladder.points0))
    if workers == 1 and not config.search.trials_per_process:
        worker.work(config, ladder, threads=threads)
    else:
        worker.run_local_workers(config, ladder, run_dir, storage, workers, threads,
                                        verify_phi=tuple(phis))  # fmt: skip
    return write_outputs(config, ladder, run_dir, results)


def write_outputs(config: GridConfig, ladder: rungs_lib.Ladder, run_dir: Path,
                  results: dict[str, Any]) -> dict[str, Any]:
    ladder.current()
    trials = [t for rung in ladder.rungs() for t in rung.queue.point_trials()]  # every round
    records = [results_lib.trial_record(t) for t in trials]
    for record, trial in zip(records, trials, strict=True):
        record["phi"], record["family"] = trial.user_attrs["phi"], trial.user_attrs["family"]
    section = summarize(results, records, plan.race_plan(config).look_confidence)
    write_json(run_dir / "verify.json", {**section, "trials": records})
    results_lib.write_trials_csv(records, run_dir / "verify_trials.csv")
    write_json(run_dir / "results.json", {**results, "verify": section})
    report_lib.write_report(run_dir, {**results, "verify": section}, config_lib.to_dict(config))
    print(section["verdict"])
    print(f"verify: {run_dir / 'verify.json'}\nreport: {run_dir / 'report.md'}\n"
          f"plot:   {run_dir / 'plots' / 'verify.png'}")
    return section


def summarize(results: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
              confidence: float) -> dict[str, Any]:
    """The ranking of the families at phi=1 (the grid) and at each verified phi."""
    fams = families(results)
    by_key = {(c["alpha"], c["beta"], c["gamma"]): c for c in results["candidates"]}
    phi1 = [dict(by_key[coefficients], family=name) for name, coefficients in fams.items()
            if coefficients in by_key]  # fmt: skip
    rows = [{"phi": 1, "ranking": [c["family"] for c in sorted(phi1, key=lambda c: -c["mean"])],
             "families": {c["family"]: _stats(c) for c in phi1},
             "best_set": [c["family"] for c in phi1 if c["key"] in (results["best_set"] or [])]
             if results.get("best_set") is not None else None}]  # fmt: skip
    for phi in sorted({r["phi"] for r in records}):
        group = [dict(r, candidate=r["family"]) for r in records if r["phi"] == phi]
        summary = stats.summarize(group, confidence)
        rows.append({"phi": phi, "ranking": [c.key for c in summary.candidates],
                     "families": {c.key: _stats(stats.candidate_json(c))
                                  for c in summary.candidates},
                     "best_set": None if summary.best_set is None else list(summary.best_set),
                     "noise": {"pooled_std": summary.noise.std if summary.noise.known else None,
                               "df": summary.noise.df},
                     "trials": len(group)})  # fmt: skip
    budget = (results.get("training") or {}).get("budget")
    text = verdict(rows)
    return {"families": {k: list(v) for k, v in fams.items()}, "rows": rows,
            "verdict": results_lib.at_budget(budget, text) if budget else text}


def _stats(c: Mapping[str, Any]) -> dict[str, Any]:
    return {"mean": c["mean"], "std": c.get("std"), "n": c["n"],
            "cost_ratio": c.get("cost_ratio"), "macs_ratio": c.get("macs_ratio")}


def verdict(rows: Sequence[Mapping[str, Any]]) -> str:
    """Whether the phi=1 ranking survives at each phi, and whether the leader is a finding."""
    first = rows[0]["ranking"]
    parts = [f"phi=1 ranking: {' > '.join(first)}."]
    for row in rows[1:]:
        if len(row["ranking"]) < len(first):
            parts.append(f"phi={row['phi']}: not every family finished ({row['trials']} trials).")
            continue
        same = "the phi=1 ranking survives" if row["ranking"] == first else "the ranking changes"
        if row["best_set"] is None:
            judged = "one seed: seed noise unknown, nothing judged"
        elif len(row["best_set"]) == 1:
            judged = f"{row['ranking'][0]} leads beyond seed noise"
        else:
            judged = f"{', '.join(row['best_set'])} are within seed noise of each other"
        parts.append(f"phi={row['phi']}: {' > '.join(row['ranking'])}: {same}; {judged}.")
    return " ".join(parts)


def main(args) -> None:
    """CLI entry: `efficientnet-search verify --run_dir DIR [--phi 2 3] [--epochs_factor 2 4]`
    (phi 2 3 when neither is given). Both are checked before either trains."""
    factors = getattr(args, "epochs_factor", None) or ()
    phis = args.phi if args.phi is not None else ([] if factors else [2, 3])
    storage, workers = getattr(args, "storage", None), getattr(args, "workers", None)
    if factors:
        verify_plan.check_factors(factors)
        verify_plan.load_results(Path(args.run_dir))
    if phis:
        run_verify(args.run_dir, phis, storage=storage, workers=workers)
    if factors:
        from efficientnet_search.search.grid import budget

        budget.run_budget_check(args.run_dir, factors, storage=storage, workers=workers)

