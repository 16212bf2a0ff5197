"""One architecture-search worker: claims budget slots, samples, trains, then retrains.

Used in-process (`--workers 1`) and as each local worker process; workers on other machines
are more `nas` commands against the same `--storage`.
"""

from __future__ import annotations

import dataclasses
import traceback
from pathlib import Path
from typing import Any

import optuna
from absl import logging
from optuna.trial import FrozenTrial, TrialState

from efficientnet_search import config as config_lib
from efficientnet_search import quiet_start
from efficientnet_search.data import config as data_config
from efficientnet_search.search.nas import plan as nas_plan
from efficientnet_search.search.nas.algorithms import SCORE_ATTR
from efficientnet_search.search.nas.config import NasConfig
from efficientnet_search.search.nas.objective import (
    cost_measures,
    latency_settings,
    proxy_spec,
    trained_key,
)
from efficientnet_search.search.proxy import trainer as proxy
from efficientnet_search.search.trials import study as study_lib
from efficientnet_search.search.trials import worker as trial_work


@dataclasses.dataclass
class _State:
    """What one worker keeps between trials: the data and its share of trials."""

    share: trial_work.Share
    splits: Any = None


def work(plan: nas_plan.NasPlan, *, threads: int | None, verbose: int = 0,
         max_trials: int | None = None) -> int:
    """Runs every search, then the retraining round by round (racing.py), until none is
    left; returns trials trained."""
    proxy.configure_threads(threads)
    state = _State(trial_work.Share(max_trials))
    with quiet_start.expected_retracing():
        for search in plan.searches:
            if not _run(search.queue, plan, state, search, verbose):
                return state.share.trained
        rounds = plan.open_retrain()
        while (round_ := rounds.current()).queue.unfinished():
            if not _run(round_.queue, plan, state, None, verbose, round_.index):
                break
    return state.share.trained


def _run(queue: study_lib.TrialQueue, plan: nas_plan.NasPlan, state: _State,
         search: nas_plan.Search | None, verbose: int, round_: int = 0) -> bool:
    """Works one queue (a search's, or round `round_` of the retraining); False when this
    process has trained its share."""

    def train(trial: optuna.Trial) -> None:
        if state.splits is None:
            state.splits = data_config.load(plan.config.data, plan.config.search.seed)
        if search is None:
            retrain_trial(plan, queue.study, trial, state.splits, verbose)
        else:
            search_trial(plan, queue.study, trial, state.splits, verbose)

    return trial_work.work_queue(
        queue, train, state.share, poll_seconds=min(5.0, plan.config.search.heartbeat_interval),
        log=lambda frozen: _log(plan, queue, search, frozen, round_))


def search_trial(plan: nas_plan.NasPlan, study: optuna.Study, trial: optuna.Trial, splits,
                 verbose: int = 0) -> None:
    """Samples the slot's architecture, trains it (unless an identical one is already
    trained: its result is copied) and ends the trial with the objective's values."""
    space = plan.objective.space
    params = {name: trial.suggest_categorical(name, d.choices)
              for name, d in space.distributions.items()}  # fmt: skip
    blocks = space.decode(params)
    key = trained_key(proxy_spec(plan.config.proxy, blocks, splits.num_classes))
    costs = cost_measures(plan.config.proxy, blocks, latency_settings(plan.config))
    trial_work.set_attrs(trial, {"blocks": list(blocks), "trained_key": key, **costs,
                                 "seed": plan.config.search.seed,
                                 "worker": trial_work.worker_id()})  # fmt: skip
    twin = _trained_twin(plan, key)
    if twin is not None:
        trial_work.set_attrs(trial, {
            "val_accuracy": twin.user_attrs["val_accuracy"], "seconds": 0.0,
            "duplicate_of": f"{twin.user_attrs.get('study', '?')}#{twin.number}"})
    else:
        record = _train(plan, trial, blocks, plan.config.search.seed, splits, verbose)
        if record is None:
            return
        trial_work.set_attrs(trial, record)
    accuracy = float(trial.user_attrs["val_accuracy"])
    cost = costs[plan.objective.measure]
    trial_work.set_attrs(trial, {SCORE_ATTR: plan.objective.score(accuracy, cost),
                                 "study": study.study_name})
    trial_work.end_trial(study, trial, plan.objective.values(accuracy, cost))


def retrain_trial(plan: nas_plan.NasPlan, study: optuna.Study, trial: optuna.Trial, splits,
                  verbose: int = 0) -> None:
    """Trains one (candidate, fresh seed) point of the honest choice."""
    blocks = tuple(trial.user_attrs["blocks"])
    costs = cost_measures(plan.config.proxy, blocks, latency_settings(plan.config))
    trial_work.set_attrs(trial, {**costs, "worker": trial_work.worker_id()})
    record = _train(plan, trial, blocks, int(trial.user_attrs["seed"]), splits, verbose)
    if record is None:
        return
    trial_work.set_attrs(trial, record)
    accuracy = float(record["val_accuracy"])
    score = plan.objective.score(accuracy, costs[plan.objective.measure])
    trial_work.set_attrs(trial, {SCORE_ATTR: score})
    trial_work.end_trial(study, trial, [accuracy])


def _train(plan: nas_plan.NasPlan, trial: optuna.Trial, blocks, seed: int, splits,
           verbose: int) -> dict[str, Any] | None:
    """Trains the proxy of `blocks`; None after recording a failure (the trial is ended)."""
    config = dataclasses.replace(plan.config.proxy, blocks=tuple(blocks))
    try:
        result = proxy.train_proxy(config, splits, alpha=1.0, beta=1.0, gamma=1.0, seed=seed,
                                   data=plan.config.data, verbose=verbose)  # fmt: skip
    except Exception as err:  # a failing architecture is recorded; the search goes on
        proxy.release_memory()
        message = f"{type(err).__name__}: {err}"
        logging.warning("trial %d failed: %s", trial.number, message)
        logging.debug("%s", traceback.format_exc())
        trial_work.set_attrs(trial, {"error": message[:2000]})
        trial_work.end_trial(trial.study, trial, None, state=TrialState.FAIL)
        return None
    return {"val_accuracy": result.curve[-1][1], "epoch_accuracies": list(result.epoch_accuracies),
            "seconds": result.seconds, "peak_rss_mb": result.peak_rss_mb}


def _trained_twin(plan: nas_plan.NasPlan, key: str) -> FrozenTrial | None:
    """A completed, really trained search trial of the same network, in any search."""
    for search in plan.searches:
        for t in search.queue.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.user_attrs.get("trained_key") == key and "duplicate_of" not in t.user_attrs:
                return t
    return None


def _log(plan: nas_plan.NasPlan, queue: study_lib.TrialQueue, search: nas_plan.Search | None,
         frozen: FrozenTrial, round_: int = 0) -> None:
    """One line per finished trial: which search (or retraining round), how far in it, this
    trial, the best score so far in it."""
    trials = queue.point_trials()
    done, eta = trial_work.progress_eta(queue, trials)
    scores = [t.user_attrs[SCORE_ATTR] for t in trials
              if t.state == TrialState.COMPLETE and SCORE_ATTR in t.user_attrs]
    attrs = frozen.user_attrs
    accuracy = attrs.get("val_accuracy") if frozen.state == TrialState.COMPLETE else None
    logging.info(
        "%s trial %d/%d: %s%s val_acc %s, %.2fx baseline %s in %.0fs | best score %s | ETA %s",
        search.label if search else ("retrain" if not round_ else
                                     f"retrain racing round {round_}:"),
        done, queue.size, frozen.state.name.lower(),
        " (trained before: copied)" if "duplicate_of" in attrs else "",
        "n/a" if accuracy is None else f"{accuracy:.4f}",
        (attrs.get(plan.objective.measure) or 0) / plan.objective.base_cost,
        plan.objective.measure, attrs.get("seconds") or 0.0,
        f"{max(scores):.4f}" if scores else "none yet",
        trial_work.duration(eta))  # fmt: skip


def process_main(config_dict: dict, run_dir: str, storage: str | None,
                 threads: int | None) -> None:
    """Entry point of a spawned local worker process."""
    trial_work.start_worker_process(logging.WARNING)  # the parent logged how it was built
    config = config_lib.from_dict(NasConfig, config_dict)
    plan = nas_plan.open_plan(config, Path(run_dir), storage)
    logging.set_verbosity(logging.INFO)
    work(plan, threads=threads, max_trials=config.search.trials_per_process or None)
