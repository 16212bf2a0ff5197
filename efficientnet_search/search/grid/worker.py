"""One grid worker: takes queued (candidate, seed) trials and trains them until none is left.

Used in-process (`--workers 1`) and as each local worker process (`--workers N`, spawned by
`grid.run_grid_search`); workers on other machines are simply more `grid` commands against
the same `--storage`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import optuna
from absl import logging
from optuna.trial import TrialState

from efficientnet_search import config as config_lib
from efficientnet_search import quiet_start
from efficientnet_search.data import config as data_config
from efficientnet_search.search import stats
from efficientnet_search.search.grid import plan, verify_plan
from efficientnet_search.search.grid import results as results_lib
from efficientnet_search.search.grid import rungs as rungs_lib
from efficientnet_search.search.grid.config import GridConfig
from efficientnet_search.search.proxy import data_cache
from efficientnet_search.search.proxy import trainer as proxy
from efficientnet_search.search.trials import processes
from efficientnet_search.search.trials import worker as trial_work

RECYCLE_EXIT_CODE = 75  # a worker process that exits to free memory; a fresh one follows
# Augmentations that crop the original image per example: resized copies cannot serve them.
_CROPPING_AUGMENTS = ("inception", "randaugment")


@dataclasses.dataclass(frozen=True)
class WorkDone:
    """What `work` did: trials trained, and whether it stopped because memory grew."""

    trained: int
    memory_exceeded: bool


@dataclasses.dataclass
class _WorkerState:
    """What a worker keeps between its trials: data, the last model, memory, timing."""

    data: Any
    models: proxy.ModelCache | None
    max_memory_growth: float | None
    spawned_at: float | None  # wall-clock time the parent started this process
    first_peak_mb: float | None = None
    last_candidate: str | None = None
    over_memory: bool = False

    def note_memory(self) -> None:
        """After a trial: whether resident memory outgrew the first trial's peak too far."""
        if self.first_peak_mb is None:
            self.first_peak_mb = proxy.peak_rss_mb()
        elif self.max_memory_growth is not None:
            limit = self.first_peak_mb * (1 + self.max_memory_growth)
            self.over_memory = proxy.current_rss_mb() > limit


def work(config: GridConfig, ladder: rungs_lib.Ladder, *, threads: int | None,
         verbose: int = 2, max_trials: int | None = None, run_dir: Path | None = None,
         spawned_at: float | None = None, splits: Any = None) -> WorkDone:
    """Trains queued trials, rung after rung, until none is left.

    With `max_trials` it returns after that many (a fresh process then takes over), and with
    `search.max_memory_growth` once its memory has grown past that. `run_dir` holds the
    shared data cache (`search.data_cache`). `splits` are the loaded `data.load(config.data,
    ...)` splits, else loaded on the first trial that needs them.
    """
    proxy.configure_threads(threads)
    state = _WorkerState(
        data=resized_data(config, run_dir, splits),
        models=proxy.ModelCache() if config.search.reuse_models else None,
        max_memory_growth=config.search.max_memory_growth, spawned_at=spawned_at,
    )  # fmt: skip
    with quiet_start.expected_retracing():
        trained = _work(config, ladder, state, verbose=verbose, max_trials=max_trials)
    if state.models is not None and state.models.holds is not None:
        state.models.clear()  # an in-process worker leaves no model behind
        proxy.release_memory()
    return WorkDone(trained, state.over_memory)


def _work(config: GridConfig, ladder: rungs_lib.Ladder, state: _WorkerState, *, verbose: int,
          max_trials: int | None) -> int:
    share = trial_work.Share(max_trials)
    # Taking the next seed of the candidate just trained lets the kept model serve it. Not
    # under Optuna's asynchronous pruners, whose decisions depend on the order of trials.
    reorder = state.models is not None and config.search.pruner in ("none", rungs_lib.HALVING)
    while not share.spent() and not state.over_memory:
        rung = ladder.current()
        if not rung.queue.unfinished():
            break

        def train(trial: optuna.Trial, rung: rungs_lib.Rung = rung) -> None:
            train_trial(config, rung.queue.study, trial, state.data, budget=rung.budget,
                        verbose=verbose, models=state.models,
                        spawned_at=state.spawned_at if share.trained == 0 else None)
            state.last_candidate = trial.user_attrs.get("candidate")
            state.note_memory()

        def prefer(frozen: optuna.trial.FrozenTrial) -> bool:
            return frozen.user_attrs.get("candidate") == state.last_candidate

        trial_work.work_queue(
            rung.queue, train, share, poll_seconds=min(5.0, config.search.heartbeat_interval),
            log=lambda frozen, rung=rung: log_progress(config, rung, frozen, share, ladder),
            prefer=prefer if reorder else None, stop=lambda: state.over_memory)
    return share.trained


def process_main(config_dict: dict, run_dir: str, storage: str | None,
                 threads: int | None, verify_phi: tuple[int, ...] | None = None,
                 epochs_factor: float | None = None, spawned_at: float | None = None) -> None:
    """Entry point of a spawned local worker process (of the verify study with `verify_phi`,
    of the budget check's study with `epochs_factor`; exits with RECYCLE_EXIT_CODE when its
    memory grew past `search.max_memory_growth`)."""
    trial_work.start_worker_process(logging.WARNING)  # the parent logged how it was built
    config = config_lib.from_dict(GridConfig, config_dict)
    if epochs_factor:
        ladder = verify_plan.open_budget_ladder(config, Path(run_dir), storage, epochs_factor)
    elif verify_phi:
        ladder = verify_plan.open_ladder(config, Path(run_dir), storage, verify_phi)
    else:
        ladder = plan.open_ladder(config, Path(run_dir), storage)
    logging.set_verbosity(logging.INFO)  # per-trial progress lines (threads, GPUs: the parent)
    done = work(config, ladder, threads=threads, verbose=0,
                max_trials=config.search.trials_per_process or None, run_dir=Path(run_dir),
                spawned_at=spawned_at)  # fmt: skip
    if done.memory_exceeded:
        logging.info("worker %d: resident memory %.0f MiB is over the limit; a fresh process "
                     "takes over", os.getpid(), proxy.current_rss_mb())  # fmt: skip
        sys.exit(RECYCLE_EXIT_CODE)


def resized_data(config: GridConfig, run_dir: Path | None,
                 splits: Any = None) -> data_cache.ResizedSplits:
    """The worker's data: loaded on its first trial, resized once per resolution (kept and
    shared through `<run_dir>/cache/` with `search.data_cache`)."""
    settings = {"data": config_lib.to_dict(config)["data"], "seed": config.search.seed}
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    keep = config.search.data_cache
    directory = run_dir / "cache" if keep and run_dir is not None else None
    return data_cache.ResizedSplits(
        lambda: splits if splits is not None else load_data(config), directory=directory,
        key=f"data-{key}", keep=keep)  # fmt: skip


def load_data(config: GridConfig):
    """The proxy's train/val splits: the same seeded split (`search.seed`) for every trial."""
    return data_config.load(config.data, config.search.seed)


def train_trial(config: GridConfig, study: optuna.Study, trial: optuna.Trial, splits,
                *, budget: int | None = None, verbose: int = 0,
                models: proxy.ModelCache | None = None, spawned_at: float | None = None) -> None:
    """Trains one queued trial and ends it: COMPLETE, PRUNED, or FAIL with its error.

    `splits` is a data.DataSplits or a data_cache.ResizedSplits. `budget` (validation
    passes, default the full run) is a rung's budget: a trial that reaches it is complete.
    `models` keeps the compiled model for the next trial (`search.reuse_models`);
    `spawned_at` (wall clock) is when this process was started, for a process's first trial.
    The trial records where its time went (results.TIMING_FIELDS).
    """
    claimed = time.time()
    attrs = trial.user_attrs
    values = {name: trial.suggest_float(name, attrs[name], attrs[name])
              for name in ("alpha", "beta", "gamma")}  # fmt: skip
    seed = int(attrs["seed"])
    spec = config.proxy.spec(**values, num_classes=splits.num_classes)
    timing = {"time_start_s": claimed - spawned_at if spawned_at else 0.0}
    if isinstance(splits, data_cache.ResizedSplits):
        if config.data.augment in _CROPPING_AUGMENTS:
            splits = splits._original()
        else:
            splits = splits.get(spec.scaling.resolution)
    timing["time_data_s"] = time.time() - claimed
    trial.set_user_attr("worker", trial_work.worker_id())
    trial.set_user_attr("resolution", spec.scaling.resolution)
    trial.set_user_attr("width", spec.scaling.width)
    trial.set_user_attr("depth", spec.scaling.depth)
    budget = budget or config.proxy.evaluations
    proxy_config = dataclasses.replace(
        config.proxy, epochs=math.ceil(budget / config.proxy.evals_per_epoch))
    pruning = config.search.pruner in ("successive_halving", "hyperband")
    # Between halving rungs only the pass at the rung's budget decides: skip the others.
    # With `search.validation: needed` and no asynchronous pruner, epoch ends before it too.
    needed = config.search.validation == "needed" and not pruning
    passes = {budget} if config.search.pruner == rungs_lib.HALVING or needed else None

    def report(step: int, accuracy: float) -> bool:
        trial.report(accuracy, step=step)
        return step >= budget or (pruning and trial.should_prune())

    try:
        result = proxy.train_proxy(proxy_config, splits, **values, seed=seed, data=config.data,
                                   report=report, passes=passes, epoch_ends=not needed,
                                   verbose=verbose, models=models)  # fmt: skip
    except Exception as err:  # a failing trial is recorded; the search goes on
        if models is not None:
            models.clear()
        proxy.release_memory()
        message = f"{type(err).__name__}: {err}"
        logging.warning("trial %d (%s) failed: %s", trial.number, attrs["candidate"], message)
        logging.debug("%s", traceback.format_exc())
        trial_work.end_trial(study, trial, None, state=TrialState.FAIL,
                             attrs={"error": message[:2000]})
        return
    record = {"epoch_accuracies": list(result.epoch_accuracies),
              "curve": [list(point) for point in result.curve], "params": result.params,
              "macs": result.macs, "seconds": result.seconds,
              "peak_rss_mb": result.peak_rss_mb, "rss_mb": proxy.current_rss_mb(),
              "reused_model": result.reused_model, **timing,
              **{f"time_{name}": value for name, value in result.timing.items()}}
    passes_done = round(result.curve[-1][0] * config.proxy.evals_per_epoch) if result.curve else 0
    if passes_done < budget:
        trial_work.end_trial(study, trial, None, state=TrialState.PRUNED, attrs=record)
    else:
        trial_work.end_trial(study, trial, result.curve[-1][1], attrs=record)


def log_progress(config: GridConfig, rung: rungs_lib.Rung,
                 frozen: optuna.trial.FrozenTrial, share: trial_work.Share,
                 ladder: rungs_lib.Ladder | None = None) -> None:
    """One line per finished trial: count, this trial, best so far, ETA (of its rung).

    In a racing round the count is the round's (`racing round k: trial i/n`) and the best so
    far is judged on every round of the rung (from `ladder`), as the race decides it.
    """
    queue = rung.queue
    trials = queue.point_trials()
    done, eta = trial_work.progress_eta(queue, trials)
    record = results_lib.trial_record(frozen)
    if rung.round and ladder is not None:
        race = [r for r in ladder.last_rung() if r.round <= rung.round]
        summary = stats.summarize(ladder.records(race))
    else:
        summary = stats.summarize([results_lib.trial_record(t) for t in trials])
    best = summary.best
    best_text = f"{best.key} {best.mean:.4f} ({best.n} seeds)" if best else "none yet"
    if eta is None:  # too few finished yet: this worker's pace times the workers running
        running = sum(t.state == TrialState.RUNNING for t in trials)
        per_trial = (time.monotonic() - share.started) / share.trained
        eta = (queue.size - done) * per_trial / max(1, running + 1)
    accuracy = record["val_accuracy"]
    where = "" if config.search.pruner != rungs_lib.HALVING else (
        f"rung {rung.index} ({rung.budget / config.proxy.evals_per_epoch:.3g} epochs) ")
    where += f"racing round {rung.round}: " if rung.round else ""
    logging.info(
        "%strial %d/%d %s seed %s: %s val_acc %s in %.0fs | best so far %s | ETA %s%s",
        where, done, queue.size, record["candidate"], record["seed"], record["state"].lower(),
        "n/a" if accuracy is None else f"{accuracy:.4f}", record["seconds"] or 0.0,
        best_text, trial_work.duration(eta), " (this round)" if rung.round else "",
    )  # fmt: skip


def run_local_workers(
    config: GridConfig, ladder: rungs_lib.Ladder, run_dir: Path, storage: str | None,
    workers: int, threads: int | None, *, verify_phi: tuple[int, ...] | None = None,
    epochs_factor: float | None = None,
) -> None:
    """Keeps `workers` spawned worker processes busy, replacing each that exits while trials
    remain (after `trials_per_process` trials, when its memory grew past
    `max_memory_growth`, or a crash: its trial is retried). With `verify_phi` they work on
    the verify study of those phi values (verify.py), with `epochs_factor` on that budget
    check's study (budget.py)."""
    args = (config_lib.to_dict(config), str(run_dir), storage, threads, verify_phi,
            epochs_factor)
    growth = config.search.max_memory_growth
    processes.run_processes(process_main, args, workers=workers, threads=threads,
                  finished=ladder.finished, restart=config.search.trials_per_process,
                  name="grid-worker", pass_start_time=True,
                  planned_exit=RECYCLE_EXIT_CODE,
                  note=f", a fresh one when memory grows past +{growth:.0%}" if growth else "",
                  )  # fmt: skip
