"""One grid worker: takes queued (candidate, seed) trials and trains them until none is left.

Used in-process (`--workers 1`) and as each local worker process (`--workers N`, spawned by
`grid.run_grid_search`); workers on other machines are simply more `grid` commands against
the same `--storage`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from absl import logging
from optuna.trial import TrialState

from efficientnet_search import config as config_lib
from efficientnet_search import quiet_start
from efficientnet_search.search import plan, proxy, verify_plan
from efficientnet_search.search import results as results_lib
from efficientnet_search.search import rungs as rungs_lib
from efficientnet_search.search import study as study_lib
from efficientnet_search.search.config import GridConfig


@dataclasses.dataclass
class _Progress:
    """Counts this worker's trials for the per-trial progress line."""

    started: float
    trained: int = 0


def work(config: GridConfig, ladder: rungs_lib.Ladder, *, threads: int | None,
         verbose: int = 2, max_trials: int | None = None) -> int:
    """Trains queued trials, rung after rung, until none is left; returns how many it trained.

    With `max_trials` it returns after that many (a fresh process then takes over).
    """
    proxy.configure_threads(threads)
    with quiet_start.expected_retracing():
        return _work(config, ladder, verbose=verbose, max_trials=max_trials)


def _work(config: GridConfig, ladder: rungs_lib.Ladder, *, verbose: int,
          max_trials: int | None) -> int:
    splits: list[Any] = []  # loaded on the first trial this worker takes
    progress = _Progress(time.monotonic())
    while max_trials is None or progress.trained < max_trials:
        rung = ladder.current()
        if not rung.queue.unfinished():
            break

        def train(trial: optuna.Trial, rung: rungs_lib.Rung = rung) -> None:
            if not splits:
                splits.append(load_data(config))
            train_trial(config, rung.queue.study, trial, splits[0], budget=rung.budget,
                        verbose=verbose)  # fmt: skip

        def on_finished(frozen: optuna.trial.FrozenTrial, rung: rungs_lib.Rung = rung) -> None:
            progress.trained += 1
            log_progress(config, rung, frozen, progress)

        left = None if max_trials is None else max_trials - progress.trained
        rung.queue.run(train, on_finished=on_finished, max_trials=left,
                       poll_seconds=min(5.0, config.search.heartbeat_interval))  # fmt: skip
    return progress.trained


def process_main(config_dict: dict, run_dir: str, storage: str | None,
                 threads: int | None, verify_phi: tuple[int, ...] | None = None) -> None:
    """Entry point of a spawned local worker process (of the verify study with `verify_phi`)."""
    from absl import flags

    flags.FLAGS.mark_as_parsed()  # absl.app does not run here: defaults, and no warning
    logging.use_absl_handler()  # the parent's line format
    quiet_start.send_tensorflow_logs_through_absl()
    logging.set_verbosity(logging.WARNING)  # the parent has logged how the grid was built
    config = config_lib.from_dict(GridConfig, config_dict)
    if verify_phi:
        ladder = verify_plan.open_ladder(config, Path(run_dir), storage, verify_phi)
    else:
        ladder = plan.open_ladder(config, Path(run_dir), storage)
    logging.set_verbosity(logging.INFO)  # per-trial progress lines (threads, GPUs: the parent)
    work(config, ladder, threads=threads, verbose=0,
         max_trials=config.search.trials_per_process or None)


def load_data(config: GridConfig):
    """The proxy's train/val splits (the same seeded split for every candidate)."""
    from efficientnet_search import data

    source, seed = config.data.source, config.search.seed
    if source.startswith("synthetic"):
        classes = int(source.partition(":")[2] or 3)
        return data.synthetic_splits(
            num_classes=classes, image_size=32, n_train=config.data.max_train or 512,
            n_val=config.data.max_val or 128, n_test=8, seed=seed,
        )  # fmt: skip
    return data.load_splits(
        source, validation_fraction=config.data.validation_fraction, seed=seed,
        max_train=config.data.max_train, max_val=config.data.max_val,
        data_dir=config.data.data_dir,
    )  # fmt: skip


def train_trial(config: GridConfig, study: optuna.Study, trial: optuna.Trial, splits,
                *, budget: int | None = None, verbose: int = 0) -> None:
    """Trains one queued trial and ends it: COMPLETE, PRUNED, or FAIL with its error.

    `budget` (validation passes, default the full run) is a rung's budget: a trial that
    reaches it is complete.
    """
    attrs = trial.user_attrs
    values = {name: trial.suggest_float(name, attrs[name], attrs[name])
              for name in ("alpha", "beta", "gamma")}  # fmt: skip
    seed = int(attrs["seed"])
    spec = config.proxy.spec(**values, num_classes=splits.num_classes)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # who trained it
    trial.set_user_attr("resolution", spec.scaling.resolution)
    trial.set_user_attr("width", spec.scaling.width)
    trial.set_user_attr("depth", spec.scaling.depth)
    budget = budget or config.proxy.evaluations
    proxy_config = dataclasses.replace(
        config.proxy, epochs=math.ceil(budget / config.proxy.evals_per_epoch))
    pruning = config.search.pruner in ("successive_halving", "hyperband")
    # Between halving rungs only the pass at the rung's budget decides: skip the others.
    passes = {budget} if config.search.pruner == rungs_lib.HALVING else None

    def report(step: int, accuracy: float) -> bool:
        trial.report(accuracy, step=step)
        return step >= budget or (pruning and trial.should_prune())

    try:
        result = proxy.train_proxy(proxy_config, splits, **values, seed=seed, report=report,
                                   passes=passes, verbose=verbose)
    except Exception as err:  # a failing trial is recorded; the search goes on
        proxy.release_memory()
        message = f"{type(err).__name__}: {err}"
        logging.warning("trial %d (%s) failed: %s", trial.number, attrs["candidate"], message)
        logging.debug("%s", traceback.format_exc())
        _finish(study, trial, {"error": message[:2000]}, state=TrialState.FAIL)
        return
    record = {"epoch_accuracies": list(result.epoch_accuracies),
              "curve": [list(point) for point in result.curve], "params": result.params,
              "macs": result.macs, "seconds": result.seconds,
              "peak_rss_mb": result.peak_rss_mb, "rss_mb": proxy.current_rss_mb()}
    passes_done = round(result.curve[-1][0] * config.proxy.evals_per_epoch) if result.curve else 0
    if passes_done < budget:
        _finish(study, trial, record, state=TrialState.PRUNED)
    else:
        _finish(study, trial, record, value=result.curve[-1][1])


def _finish(study: optuna.Study, trial: optuna.Trial, attrs: dict[str, Any], *,
            state: TrialState = TrialState.COMPLETE, value: float | None = None) -> None:
    """Records the trial's attributes and ends it, unless another worker already retried it."""
    try:
        for key, item in attrs.items():
            trial.set_user_attr(key, item)
        study.tell(trial, value, state=state if value is None else None)
    except optuna.exceptions.UpdateFinishedTrialError:
        # Its heartbeat was late by more than grace_period, so another worker failed it and
        # queued a retry; that retry is the one that counts.
        logging.warning("trial %d was failed as stale by another worker; its retry counts "
                        "(raise search.grace_period on a busy machine)", trial.number)


def log_progress(config: GridConfig, rung: rungs_lib.Rung,
                 frozen: optuna.trial.FrozenTrial, progress: _Progress) -> None:
    """One line per finished trial: count, this trial, best so far, ETA (of its rung)."""
    queue = rung.queue
    trials = queue.point_trials()
    done = len(study_lib.finished_points(trials))
    record = results_lib.trial_record(frozen)
    summary = results_lib.summarize([results_lib.trial_record(t) for t in trials])
    best = summary.best
    best_text = f"{best.key} {best.mean:.4f} ({best.n} seeds)" if best else "none yet"
    spans = [(t.datetime_start.timestamp(), t.datetime_complete.timestamp()) for t in trials
             if t.datetime_start and t.datetime_complete and study_lib.is_finished(t)]
    eta = eta_seconds(spans, queue.size - done)
    if eta is None:  # too few finished yet: this worker's pace times the workers running
        running = sum(t.state == TrialState.RUNNING for t in trials)
        per_trial = (time.monotonic() - progress.started) / progress.trained
        eta = (queue.size - done) * per_trial / max(1, running + 1)
    accuracy = record["val_accuracy"]
    where = "" if config.search.pruner != rungs_lib.HALVING else (
        f"rung {rung.index} ({rung.budget / config.proxy.evals_per_epoch:.3g} epochs) ")
    logging.info(
        "%strial %d/%d %s seed %s: %s val_acc %s in %.0fs | best so far %s | ETA %s",
        where, done, queue.size, record["candidate"], record["seed"], record["state"].lower(),
        "n/a" if accuracy is None else f"{accuracy:.4f}", record["seconds"] or 0.0,
        best_text, _duration(eta),
    )  # fmt: skip


ETA_WINDOW = 8  # finished trials whose pace predicts the rest


def eta_seconds(spans: Sequence[tuple[float, float]], remaining: int) -> float | None:
    """Seconds until `remaining` more trials finish, at the pace of the last few finished.

    `spans` are the finished trials' (start, end) times. The pace is the time from the
    earliest start to the latest end of the last ETA_WINDOW of them, per trial: it counts
    every worker sharing the study (any machine) and the gaps between their trials. None
    until two trials have finished.
    """
    window = sorted(spans, key=lambda span: span[1])[-ETA_WINDOW:]
    if len(window) < 2:
        return None
    return remaining * (window[-1][1] - min(start for start, _ in window)) / len(window)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
