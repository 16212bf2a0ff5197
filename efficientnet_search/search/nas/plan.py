"""What an architecture search trains, as Optuna studies every worker derives from the config.

Exactly once, with adaptive proposals. The grid knows its points in advance; a search does
not, so each search study (one per algorithm and search seed, `<name>/<algorithm>/seed<s>`)
queues `trials` empty *budget slots* (`slot0`, `slot1`, ...) through `study.open_study`,
exactly once, as the grid queues its points. A worker claims a slot (the same atomic claim)
and only then asks the study's sampler for the slot's architecture, from the trials finished
at that moment. So the budget is fixed, no slot is trained twice, a killed trial's heartbeat
stops and `RetryHeartbeatStaleTrialCallback` re-queues it with the architecture it had
already drawn (Optuna copies its parameters), and a re-run resumes where the kill left off.

Once every search study is finished, the honest choice (`retrain` study) is fixed too: the
top-k of the main algorithm's front, random search's best and the B0-shaped baseline, each
with `retrain_seeds` fresh seeds, queued once like grid points. With `search.max_repeats`
the retraining races (search/racing.py): rounds of one more fresh seed for the candidates
still tied with the best by mean accuracy, each round a study
(`retrain/race-m<M>-c<conf>/round<k>`) every worker derives from the finished rounds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from efficientnet_search import config as config_lib
from efficientnet_search.search import racing
from efficientnet_search.search.nas import algorithms as nas_algorithms
from efficientnet_search.search.nas.config import NasConfig
from efficientnet_search.search.nas.objective import (
    Objective,
    pareto_front,
    proxy_spec,
    resolve_objective,
    trained_key,
)
from efficientnet_search.search.trials import storage as storage_lib
from efficientnet_search.search.trials import study as study_lib

RETRAIN = "retrain"
BASELINE = "baseline"


def study_name(config: NasConfig) -> str:
    """The run's study prefix: the config name and a digest of what changes results."""
    if config.search.study_name:
        return config.search.study_name
    data = config_lib.to_dict(config)
    # Settings of how the run is carried out, not of what it is. evolution_lag changes the
    # proposals still to come, but a run resumed on more or fewer workers is the same search
    # (and leaving it out keeps the names of studies made before it existed). Racing rounds
    # are studies of their own (search/racing.py): the first seeds are the same retraining.
    for runtime in ("workers", "threads", "heartbeat_interval", "grace_period", "confidence",
                    "trials_per_process", "evolution_lag", "max_repeats"):  # fmt: skip
        data["search"].pop(runtime)
    digest = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    return f"nas-{config.name}-{digest}"


@dataclasses.dataclass(frozen=True)
class Search:
    """One algorithm's search for one search seed, and its queue of budget slots."""

    algorithm: str
    search_seed: int
    queue: study_lib.TrialQueue

    @property
    def label(self) -> str:
        return f"{self.algorithm}/seed{self.search_seed}"


@dataclasses.dataclass(frozen=True)
class NasPlan:
    """The searches of one run (in the order workers take them) and how to reach storage."""

    config: NasConfig
    objective: Objective
    url: str
    storage: optuna.storages.BaseStorage  # opened once: each opening checks the schema
    name: str
    searches: tuple[Search, ...]

    def searches_finished(self) -> bool:
        return not any(s.queue.unfinished() for s in self.searches)

    @property
    def race(self) -> racing.RacePlan:
        """The racing of the retraining (none unless `search.max_repeats` > retrain_seeds)."""
        search = self.config.search
        return racing.RacePlan(search.retrain_seeds, search.race_repeats, search.confidence)

    def open_retrain(self) -> racing.Rounds:
        """The retraining's rounds: the `retrain` study, then its racing rounds (call once
        every search is finished: its points follow; `current()` opens what is due)."""
        return racing.Rounds(
            self.race, f"{self.name}/{RETRAIN}", retrain_points(self),
            lambda name, points: self._open(name, points, None, ["maximize"]),
            lambda trial: nas_record(trial, RETRAIN, None))  # fmt: skip

    def finished(self) -> bool:
        """Whether the whole run (searches, then every round of retraining) is done."""
        return self.searches_finished() and self.open_retrain().finished()

    def _open(self, name: str, points: Sequence[study_lib.Point], sampler,
              directions: Sequence[str]) -> study_lib.TrialQueue:
        search = self.config.search
        return study_lib.open_study(
            self.storage, name, points, sampler=sampler, directions=directions,
            claim_lock=storage_lib.sqlite_claim_lock(self.url),
            heartbeat_interval=search.heartbeat_interval, grace_period=search.grace_period)


def open_plan(config: NasConfig, run_dir: Path, storage: str | None) -> NasPlan:
    """Opens (or joins) every search study of `config`, each with its budget slots queued."""
    objective = resolve_objective(config)
    url = storage_lib.storage_url(storage, run_dir)
    opened = storage_lib.open_storage(url, heartbeat_interval=config.search.heartbeat_interval,
                                    grace_period=config.search.grace_period)
    plan = NasPlan(config, objective, url, opened, study_name(config), ())
    searches = []
    for algorithm in config.search.algorithms:
        for seed in config.search.search_seeds:
            sampler = nas_algorithms.make_sampler(
                algorithm, objective.space, seed=seed, population=config.search.population,
                sample_size=config.search.sample_size,
                lag=config.search.lag_for(config.search.workers))  # fmt: skip
            slots = [study_lib.Point(f"slot{n}", {}, {nas_algorithms.SLOT_ATTR: n})
                     for n in range(config.search.trials)]
            queue = plan._open(f"{plan.name}/{algorithm}/seed{seed}", slots, sampler,
                               objective.directions)  # fmt: skip
            searches.append(Search(algorithm, seed, queue))
    return dataclasses.replace(plan, searches=tuple(searches))


def nas_record(trial: FrozenTrial, algorithm: str, search_seed: int | None) -> dict[str, Any]:
    """A plain record of one NAS trial (search or retrain) from its Optuna trial."""
    attrs = trial.user_attrs
    seconds = attrs.get("seconds")
    if seconds is None and trial.datetime_complete and trial.datetime_start:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    done = trial.state == TrialState.COMPLETE
    return {
        "number": trial.number, "algorithm": algorithm, "search_seed": search_seed,
        "slot": attrs.get(nas_algorithms.SLOT_ATTR), "state": trial.state.name,
        "val_accuracy": attrs.get("val_accuracy") if done else None,
        "score": attrs.get(nas_algorithms.SCORE_ATTR) if done else None,
        **{k: attrs.get(k) for k in ("macs", "activations", "params", "latency",
                                     "latency_device", "blocks", "trained_key", "seed",
                                     "duplicate_of", "roles", "candidate", "worker", "error",
                                     "peak_rss_mb")},
        # The round of the retraining's race (search/racing.py); None for a search trial.
        "round": attrs.get("round", 0) if algorithm == RETRAIN else None,
        "seconds": seconds,
    }  # fmt: skip


def search_records(plan: NasPlan) -> list[dict[str, Any]]:
    """Every trial of every search, in study then trial order."""
    return [nas_record(t, s.algorithm, s.search_seed) for s in plan.searches
            for t in s.queue.point_trials()]  # fmt: skip


def ranked(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Completed records, one per trained network, best score first (earliest on ties)."""
    best: dict[str, Mapping[str, Any]] = {}
    for r in sorted(records, key=lambda r: (-(r["score"] or 0), r["number"])):
        if r["state"] == "COMPLETE" and r["score"] is not None:
            best.setdefault(r["trained_key"], r)
    return list(best.values())


def retrain_candidates(plan: NasPlan) -> list[dict[str, Any]]:
    """The architectures retrained for the honest choice, each with its roles.

    Reward: the main algorithm's top-k by reward. Pareto: its front's top-k by reward. Then
    random search's best by reward and the baseline (the B0-shaped proxy). With several
    search seeds, each algorithm's trials are pooled over its seeds (equal budgets).
    """
    records = search_records(plan)
    main = [r for r in records if r["algorithm"] == plan.config.search.main]
    if plan.objective.kind == "pareto":
        front = {r["trained_key"] for r in pareto_front(main, plan.objective.measure)}
        main = [r for r in main if r["trained_key"] in front]
    chosen: dict[str, dict[str, Any]] = {}

    def add(blocks: Sequence[str], key: str, role: str) -> None:
        entry = chosen.setdefault(key, {"blocks": list(blocks), "trained_key": key, "roles": []})
        entry["roles"].append(role)

    for rank, r in enumerate(ranked(main)[:plan.config.search.top_k]):
        add(r["blocks"], r["trained_key"], f"top{rank + 1}")
    best_random = ranked([r for r in records if r["algorithm"] == "random"])[:1]
    for r in best_random:
        add(r["blocks"], r["trained_key"], "random_best")
    base_blocks = list(plan.config.proxy.blocks)
    add(base_blocks, _baseline_key(plan, base_blocks), BASELINE)
    return list(chosen.values())


def _baseline_key(plan: NasPlan, blocks: Sequence[str]) -> str:
    # The key names no classifier, so any class count gives the searched trials' key.
    return trained_key(proxy_spec(plan.config.proxy, blocks, num_classes=1))


def retrain_points(plan: NasPlan) -> list[study_lib.Point]:
    """(candidate, fresh seed) points: seeds search.seed + 1, + 2, ... (never the search's)."""
    points = []
    for candidate in retrain_candidates(plan):
        digest = hashlib.sha1(candidate["trained_key"].encode()).hexdigest()[:10]
        for r in range(plan.config.search.retrain_seeds):
            seed = plan.config.search.seed + 1 + r
            points.append(study_lib.Point(
                key=f"c{digest}_s{seed}", params={},
                attrs={"candidate": f"c{digest}", "blocks": candidate["blocks"],
                       "trained_key": candidate["trained_key"], "roles": candidate["roles"],
                       "seed": seed}))  # fmt: skip
    return points
