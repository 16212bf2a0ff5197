"""The compound-scaling grid search (Tan & Le 2019, Section 3.3, step 1).

Fix phi=1, enumerate (alpha, beta, gamma) with alpha * beta^2 * gamma^2 close to the target
(2: each step of phi doubles the multiply-adds), train every candidate `repeats` times on a
small proxy, and keep the candidates whose mean validation accuracy is best, honestly: a
candidate that leads by less than seed noise is reported as tied, not as a finding.

    efficientnet-search grid --config configs/grid/fashion_mnist_quick.yaml \\
        --run_dir runs/fashion_mnist_quick [--workers 2] [--storage URL] [--seed 0]

Every (candidate, seed) is queued once in an Optuna study (`trials/study.py`), so re-running the
command resumes, and workers on many machines (`--storage postgresql://...`) share the grid.
With `search.pruner: candidate_halving` the grid is climbed in rungs of growing budget, each
its own study (`rungs.py`). The run directory gets config.yaml, study.db, trials.csv,
results.json, report.md, plots/.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from absl import logging

from efficientnet_search import config as config_lib
from efficientnet_search.jsonio import write_json
from efficientnet_search.search import racing, stats
from efficientnet_search.search.grid import equal_cost, plan, worker
from efficientnet_search.search.grid import report as report_lib
from efficientnet_search.search.grid import results as results_lib
from efficientnet_search.search.grid import rungs as rungs_lib
from efficientnet_search.search.grid.config import (  # noqa: F401  (re-exported: the grid's API)
    CandidatesConfig,
    GridConfig,
    SearchConfig,
)
from efficientnet_search.search.grid.plan import (  # noqa: F401
    distinct_architectures,
    enumerate_candidates,
    grid_points,
    open_ladder,
    study_name,
)
from efficientnet_search.search.proxy import trainer as proxy
from efficientnet_search.search.trials import processes as local_workers
from efficientnet_search.search.trials import storage as storage_lib


@dataclasses.dataclass(frozen=True)
class GridResult:
    """Where the outputs went and the noise-aware summary."""

    run_dir: Path
    results_path: Path
    report_path: Path
    summary: stats.Summary
    results: dict[str, Any]


def run_grid_search(
    config: GridConfig,
    *,
    run_dir: str | Path | None = None,
    storage: str | None = None,
    workers: int | None = None,
) -> GridResult:
    """Runs (or resumes, or joins) the grid search of `config`; writes and returns results.

    Args:
      config: the search.
      run_dir: output directory (default `runs/<config.name>`).
      storage: Optuna storage URL or journal path (default: SQLite in `run_dir`).
      workers: local worker processes (default `config.search.workers`; 0: one per usable
        core that the available memory holds, single-threaded).
    """
    run_dir = Path(run_dir or Path("runs") / config.name)
    workers = workers if workers is not None else config.search.workers
    if workers < 0:
        raise ValueError(f"workers must be >= 1 (0: from the machine), got {workers=}")
    if workers == 0:
        workers = local_workers.machine_workers(config.search.worker_memory_gb)
        config = dataclasses.replace(config, search=dataclasses.replace(
            config.search, threads=config.search.threads or 1))  # fmt: skip
    threads = config.search.threads or (max(1, (os.cpu_count() or 1) // workers)
                                        if workers > 1 else None)
    # A process that must be replaced (after some trials, or when its memory grew) is a
    # spawned worker; otherwise one worker trains in this process.
    in_process = workers == 1 and not (config.search.trials_per_process
                                       or config.search.max_memory_growth)  # fmt: skip
    if in_process:
        proxy.configure_threads(threads)  # before the data's or latency's first TensorFlow op
    elif config.candidates.cost != "latency":  # latency is timed on this host's accelerator
        _keep_off_gpus()
    # Check the storage, read the data and measure the plan (once) before writing anything:
    # bad input fails with one line and leaves no run behind.
    storage_lib.check_storage(storage)
    splits = worker.load_data(config)
    table = plan.candidate_plan(config, run_dir)
    racing.save_run_config(config, run_dir)  # a new search.max_repeats races a finished run on
    plan.store_plan(config, table, run_dir)
    ladder = open_ladder(config, run_dir, storage, table)
    points = len(ladder.points0)
    logging.info("grid %s: %d candidates x %d seeds = %d trials; storage %s",
                 config.name, points // config.search.repeats, config.search.repeats,
                 points, storage_lib.storage_url(storage, run_dir))  # fmt: skip
    if len(ladder.budgets) > 1:
        factor = config.search.pruner_reduction_factor
        logging.info(
            "candidate halving: rungs of %s epochs, the best 1/%d candidates move up; planned "
            "compute %.0f%% of an exhaustive search",
            ", ".join(f"{b / config.proxy.evals_per_epoch:.3g}" for b in ladder.budgets), factor,
            100 * rungs_lib.planned_share(points // config.search.repeats, ladder.budgets, factor),
        )  # fmt: skip
    if in_process:
        worker.work(config, ladder, threads=threads, run_dir=run_dir, splits=splits)
    else:  # each worker process loads its own copy (or reads the shared cache)
        worker.run_local_workers(config, ladder, run_dir, storage, workers, threads)
    outputs = write_outputs(config, ladder, run_dir)
    if config.verify.phi:
        from efficientnet_search.search.grid import verify  # builds on this module's outputs

        verify.run_verify(run_dir, config.verify.phi, storage=storage, workers=workers)
    if config.verify.epochs_factor:
        from efficientnet_search.search.grid import budget  # builds on this module's outputs

        budget.run_budget_check(run_dir, config.verify.epochs_factor, storage=storage,
                                workers=workers)  # fmt: skip
    return outputs


def _keep_off_gpus() -> None:
    """Hides the GPUs from this (supervising) process before it reads the data.

    Its first TensorFlow op would otherwise reserve nearly all memory of every GPU, which the
    spawned workers need; they are fresh processes, so the setting does not reach them.
    """
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already started in this process (e.g. under pytest)
        pass


LATER_CHECKS = ("verify", "budget_check")  # sections `verify` adds to a finished grid's results


STALE_CHECK = " (This check retrained the best set of an earlier state of the grid, "


def _later_checks(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """The verify and budget-check sections of an earlier results.json, kept when the grid is
    re-run (resumed, or raced further): they are trained work, not the grid's to drop. A
    budget check whose grid row (the best set it retrained) is not today's best set says so
    in its verdict; the note is derived afresh on every write, so re-runs never stack it."""
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    kept = {k: earlier[k] for k in LATER_CHECKS if earlier.get(k)}
    if "budget_check" in kept:
        section = kept["budget_check"]
        verdict = section["verdict"].split(STALE_CHECK)[0]
        checked = (section.get("rows") or [{}])[0].get("best_set")
        if checked is not None and checked != payload.get("best_set"):
            verdict += f"{STALE_CHECK}{', '.join(checked)}; re-run `verify` for today's.)"
        kept["budget_check"] = {**section, "verdict": verdict}
    return kept


def write_outputs(config: GridConfig, ladder: rungs_lib.Ladder, run_dir: Path) -> GridResult:
    """Writes trials.csv, results.json, report.md and plots from the study's trials.

    The verdict is drawn from the highest rung with completed trials (the only rung
    without candidate halving); lower rungs are summarized under `rungs`.
    """
    ladder.current()
    by_rung: dict[int, list[dict[str, Any]]] = {}  # a rung's racing rounds join it
    for rung in ladder.rungs():
        by_rung.setdefault(rung.index, []).extend(ladder.records([rung]))
    records = [record for rung in sorted(by_rung) for record in by_rung[rung]]
    top = max((r for r, group in by_rung.items()
               if any(t["state"] == "COMPLETE" for t in group)), default=0)  # fmt: skip
    race = plan.race_plan(config)
    summary = stats.summarize(by_rung.get(top, []), race.look_confidence)
    payload = results_lib.to_json(summary, records)
    epochs = ladder.budgets[-1] / config.proxy.evals_per_epoch
    budget = results_lib.budget_label(epochs)  # every verdict says where it holds
    payload["training"] = {"epochs": epochs, "budget": budget}
    payload["verdict"] = results_lib.at_budget(budget, payload["verdict"])
    payload["study"] = {"name": study_name(config), "points": len(ladder.points0)}
    payload["blocks"] = list(config.proxy.blocks)  # the baseline scaled (scale --blocks_from)
    payload["cost"] = config.candidates.cost
    payload["equal_cost"] = equal_cost.analyse(payload["candidates"], payload["noise"], budget)
    payload["notes"] = list(plan.candidate_plan(config, run_dir).notes)
    if len(ladder.budgets) > 1:
        payload["rungs"] = rungs_lib.rung_summaries(
            ladder, by_rung, config.proxy.evals_per_epoch, config.search.confidence)
        payload["verdict"] += rungs_lib.halving_note(payload["rungs"])
    if race.racing:
        payload["racing"] = racing.section(race, [ladder.records([r]) for r in ladder.last_rung()])
        payload["verdict"] += racing.racing_note(race, payload["racing"]["rounds"])
    results_lib.write_trials_csv(records, run_dir / "trials.csv")
    results_path = run_dir / "results.json"
    payload.update(_later_checks(results_path, payload))
    write_json(results_path, payload)
    report_path = report_lib.write_report(run_dir, payload, config_lib.to_dict(config))
    logging.info("%s", payload["verdict"])
    print(report_lib.candidates_text(payload))
    print("\n".join(report_lib.decision_lines(payload, run_dir)))
    print(f"results: {results_path}\nreport:  {report_path}\nplots:   {run_dir / 'plots'}")
    return GridResult(run_dir, results_path, report_path, summary, payload)


def load_grid_config(path: str, overrides: list[str], seed: int | None) -> GridConfig:
    """Reads a grid YAML with `--set` overrides; `--seed` overrides search.seed. The grid is
    planned once, by `run_grid_search`, after the storage and the data are checked."""
    if seed is not None:
        overrides = [*overrides, f"search.seed={seed}"]
    return config_lib.load_config(GridConfig, path, overrides)


def main(args) -> None:
    """CLI entry: `efficientnet-search grid` (see the module docstring)."""
    config = load_grid_config(args.config, list(args.set or []), getattr(args, "seed", None))
    run_dir = args.run_dir or str(Path("runs") / config.name)
    run_grid_search(
        config, run_dir=run_dir, storage=getattr(args, "storage", None),
        workers=getattr(args, "workers", None),
    )  # fmt: skip
