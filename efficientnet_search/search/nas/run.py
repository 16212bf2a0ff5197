"""MnasNet-style architecture search of the baseline (Tan et al. 2019), before scaling.

Per stage of the baseline, sample kernel, expansion, SE, repeats and output channels
(`space.py`), train each sampled network briefly on the proxy, score it with MnasNet's
reward or on the (accuracy, cost) Pareto front (`objective.py`), and let the algorithm
(`algorithms.py`: random, regularized evolution, TPE, NSGA-II) propose the next. Then
retrain the best few with fresh seeds and choose honestly (`results.py`).

    efficientnet-search nas --config configs/nas/fashion_mnist_quick.yaml \\
        --run_dir runs/nas_quick [--workers 2] [--storage URL] [--seed 0]

The run directory gets config.yaml, study.db, trials.csv, results.json (the chosen baseline
as block strings: `grid --set proxy.blocks_from=RUN/results.json` and `scale --blocks_from`
take it), report.md and plots/. Re-running resumes (`plan.py` says how exactly-once holds
with adaptive proposals).
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path
from typing import Any

from absl import logging

from efficientnet_search import config as config_lib
from efficientnet_search.jsonio import write_json
from efficientnet_search.search import racing
from efficientnet_search.search.nas import plan as nas_plan
from efficientnet_search.search.nas import report as report_lib
from efficientnet_search.search.nas import results as results_lib
from efficientnet_search.search.nas import worker as nas_worker
from efficientnet_search.search.nas.config import NasConfig
from efficientnet_search.search.nas.objective import resolve_objective
from efficientnet_search.search.trials import processes as local_workers
from efficientnet_search.search.trials import storage as storage_lib

CSV_FIELDS = ("algorithm", "search_seed", "number", "slot", "candidate", "seed", "state",
              "val_accuracy", "score", "macs", "activations", "params", "latency", "duplicate_of",
              "seconds", "worker", "blocks", "error")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class NasResult:
    """Where the outputs went and the results payload."""

    run_dir: Path
    results_path: Path
    report_path: Path
    results: dict[str, Any]


def run_nas(config: NasConfig, *, run_dir: str | Path | None = None,
            storage: str | None = None, workers: int | None = None) -> NasResult:
    """Runs (or resumes, or joins) the architecture search of `config`; writes its results.

    Args:
      config: the search.
      run_dir: output directory (default `runs/<config.name>`).
      storage: Optuna storage URL or journal path (default: SQLite in `run_dir`).
      workers: local worker processes (default `config.search.workers`).
    """
    run_dir = Path(run_dir or Path("runs") / config.name)
    workers = workers or config.search.workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers=}")
    resolve_objective(config)  # a bad space or target fails before anything is written
    storage_lib.check_storage(storage)  # so does a bad or unreachable storage
    racing.save_run_config(config, run_dir)  # a new search.max_repeats races a finished run
    config = dataclasses.replace(config, search=dataclasses.replace(  # for the workers it starts
        config.search, evolution_lag=config.search.lag_for(workers)))
    plan = nas_plan.open_plan(config, run_dir, storage)
    search = config.search
    logging.info(
        "nas %s: %s x %d search seed(s) x %d trials, then top-%d + random's best + baseline "
        "x %d fresh seeds%s; space of %.3g architectures; T = %s %s; evolution lag %d; "
        "storage %s",
        config.name, "/".join(search.algorithms), len(search.search_seeds), search.trials,
        search.top_k, search.retrain_seeds,
        f" (racing: up to {search.race_repeats} for those tied with the best)"
        if plan.race.racing else "", plan.objective.space.size,
        f"{plan.objective.target:,.0f}", plan.objective.measure, search.evolution_lag,
        plan.url)  # fmt: skip
    threads = search.threads or (max(1, (os.cpu_count() or 1) // workers)
                                 if workers > 1 else None)  # fmt: skip
    if workers == 1 and not search.trials_per_process:
        nas_worker.work(plan, threads=threads)
    else:
        args = (config_lib.to_dict(config), str(run_dir), storage, threads)
        local_workers.run_processes(nas_worker.process_main, args, workers=workers,
                                    threads=threads, finished=plan.finished,
                                    restart=search.trials_per_process, name="nas-worker")
    return write_outputs(plan, run_dir)


def write_outputs(plan: nas_plan.NasPlan, run_dir: Path) -> NasResult:
    """Writes trials.csv, results.json, report.md and plots from the studies' trials."""
    payload = results_payload(plan)
    write_trials_csv(payload["trials"], run_dir / "trials.csv")
    results_path = write_json(run_dir / "results.json", payload)
    report_path = report_lib.write_report(run_dir, payload, config_lib.to_dict(plan.config))
    logging.info("%s", payload["verdict"])
    print(report_lib.retrained_text(payload))
    print(f"results: {results_path}\nreport:  {report_path}\nplots:   {run_dir / 'plots'}")
    return NasResult(run_dir, results_path, report_path, payload)


def results_payload(plan: nas_plan.NasPlan) -> dict[str, Any]:
    """Everything results.json holds (see the module docstring of nas_results)."""
    objective, search, race = plan.objective, plan.config.search, plan.race
    records = nas_plan.search_records(plan)
    retrain, rounds = [], []
    if plan.searches_finished():
        retraining = plan.open_retrain()
        retraining.current()
        rounds = [retraining.records([r]) for r in retraining.opened()]
        retrain = [record for group in rounds for record in group]
    summaries = results_lib.retrained_summaries(retrain, objective.measure, objective.base_cost)
    # Racing: the comparisons are the race's last look, at its split level (stats.py).
    seed_noise = results_lib.noise(summaries, race.look_confidence)
    chosen = results_lib.choose(summaries)
    by_role = {role: c for c in summaries for role in c["roles"]}
    compare = {}
    for role in (nas_plan.BASELINE, "random_best"):
        if chosen is not None and role in by_role:
            compare[role] = results_lib.compare(chosen, by_role[role], seed_noise,
                                                objective.measure)  # fmt: skip
    verdict = results_lib.verdict(chosen, compare.get(nas_plan.BASELINE),
                                  compare.get("random_best"), search.main)  # fmt: skip
    section = racing.section(race, rounds) if race.racing else None
    if section is not None:
        verdict += racing.racing_note(race, section["rounds"])
    return {
        "kind": "nas",
        "verdict": verdict,
        "racing": section,
        "chosen": chosen,
        "baseline": by_role.get(nas_plan.BASELINE),
        "random_best": by_role.get("random_best"),
        "comparisons": compare,
        "retrained": summaries,
        "noise": {"pooled_std": results_lib._none(seed_noise.std), "df": seed_noise.df,
                  "confidence": seed_noise.confidence},
        "objective": {"kind": objective.kind, "measure": objective.measure,
                      "target": objective.target, "exponent": objective.exponent,
                      "baseline_cost": objective.base_cost},
        "space": {"architectures": objective.space.size,
                  "stages": [{k: list(v) for k, v in s.items()}
                             for s in objective.space.options]},
        "front": results_lib.front_json(records, objective.measure),
        "searches": results_lib.search_summaries(records),
        "study": {"name": plan.name, "storage": plan.url.split("://")[0]},
        "trials": records + retrain,
    }  # fmt: skip


def write_trials_csv(records, path: Path) -> Path:
    """One row per trial (search and retrain); block lists joined with spaces."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({**record, "blocks": " ".join(record.get("blocks") or ())})
    return path


def load_nas_config(path: str, overrides: list[str], seed: int | None) -> NasConfig:
    """Reads a NAS YAML with `--set` overrides; `--seed` overrides search.seed. Checks the
    space and the target before anything runs."""
    if seed is not None:
        overrides = [*overrides, f"search.seed={seed}"]
    config = config_lib.load_config(NasConfig, path, overrides)
    resolve_objective(config)
    return config


def main(args) -> None:
    """CLI entry: `efficientnet-search nas` (see the module docstring)."""
    config = load_nas_config(args.config, list(args.set or []), getattr(args, "seed", None))
    run_nas(config, run_dir=args.run_dir or str(Path("runs") / config.name),
            storage=getattr(args, "storage", None), workers=getattr(args, "workers", None))

