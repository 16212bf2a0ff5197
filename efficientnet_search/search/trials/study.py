"""Optuna studies whose points are known in advance, each trained exactly once.

Shared by every search of the project. A search names its points (for the grid: every
(candidate, seed) pair) and this module makes them trials:

* **Enqueue once.** The process that creates the study queues every point as a WAITING trial
  and then marks the study (`user_attrs["enqueued"]`). Creating a study is atomic in every
  Optuna storage (a second `create_study` of the same name raises `DuplicatedStudyError`), so
  only one of several workers starting together enqueues; the others wait for the mark. If the
  creator died half way, a later worker tops the queue up from the point keys it finds.
* **Take one at a time.** Workers claim a waiting trial by moving it to RUNNING with
  `storage.set_trial_state_values`, which refuses a trial another worker already moved (the
  same claim `Study.ask` makes, without `ask`'s fallback of sampling a new point when the
  queue is empty).
* **Heartbeat and retry.** A running trial records a heartbeat every `heartbeat_interval`
  seconds; a trial silent for `grace_period` (its process was killed) is failed and re-queued
  by `RetryHeartbeatStaleTrialCallback` (at most `MAX_RETRY` times), so a re-run or another
  live worker finishes it. Finished trials are never touched. RDB storages (SQLite,
  PostgreSQL, MySQL) use Optuna's own heartbeat, timed by the database's clock. Optuna's
  JournalStorage has none, so there the beat is a trial system attribute holding the wall
  clock (`HEARTBEAT_ATTR`): machines sharing one journal file need clocks that agree to well
  within the grace period (NTP does). Only one worker can fail a given trial (the storage
  refuses to finish a trial twice), so each stale trial is retried once.

Storages are opened from a URL by `storage.py`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from efficientnet_search.search.trials.storage import MAX_RETRY, open_storage, sqlite_claim_lock

ENQUEUED_ATTR = "enqueued"
POINT_ATTR = "point"
HEARTBEAT_ATTR = "heartbeat_time"  # unix seconds of a running trial's last beat (journal)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclasses.dataclass(frozen=True)
class Point:
    """One unit of work: a stable key, the fixed parameters and extra user attributes."""

    key: str
    params: Mapping[str, float | int]
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def open_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    points: Sequence[Point],
    *,
    pruner: optuna.pruners.BasePruner | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    directions: Sequence[str] = ("maximize",),
    wait_seconds: float = 60.0,
    claim_lock: Path | None = None,
    heartbeat_interval: int = 20,
    grace_period: int = 60,
) -> TrialQueue:
    """Creates or joins study `name` with every point queued exactly once.

    `directions` are the study's objectives (one "maximize" by default); `sampler` proposes
    the parameters a point leaves open (the architecture search queues budget slots whose
    architecture is sampled when a worker claims them). With SQLite pass
    `claim_lock=sqlite_claim_lock(url)` (`open_queue` does). The heartbeat
    settings apply to storages without Optuna's own heartbeat (journal files).
    """
    keys = [p.key for p in points]
    if len(set(keys)) != len(keys):
        raise ValueError(f"point keys must be unique, got {len(keys) - len(set(keys))} repeats")
    pruner = pruner or optuna.pruners.NopPruner()
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=directions,
                                    pruner=pruner, sampler=sampler)
        _enqueue_missing(study, points)
        return TrialQueue(study, storage, len(points), claim_lock, heartbeat_interval,
                          grace_period)  # fmt: skip
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, pruner=pruner,
                                  sampler=sampler)
    deadline = time.monotonic() + wait_seconds
    while ENQUEUED_ATTR not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.5)
    marked = study.user_attrs.get(ENQUEUED_ATTR)
    if marked is None:  # the creator died while enqueueing: finish its job
        _enqueue_missing(study, points)
    elif marked != len(points):
        raise ValueError(
            f"study {name!r} holds {marked} points but this config has {len(points)}; "
            "use the same config as the other workers, or another study or run directory"
        )
    return TrialQueue(study, storage, len(points), claim_lock, heartbeat_interval, grace_period)


def open_queue(
    url: str,
    name: str,
    points: Sequence[Point],
    *,
    pruner: optuna.pruners.BasePruner | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    directions: Sequence[str] = ("maximize",),
    heartbeat_interval: int = 20,
    grace_period: int = 60,
) -> TrialQueue:
    """Opens the storage at `url` and creates or joins study `name` with `points` queued."""
    storage = open_storage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    return open_study(storage, name, points, pruner=pruner, sampler=sampler,
                      directions=directions, claim_lock=sqlite_claim_lock(url),
                      heartbeat_interval=heartbeat_interval, grace_period=grace_period)


def _enqueue_missing(study: optuna.Study, points: Sequence[Point]) -> None:
    present = {t.user_attrs.get(POINT_ATTR) for t in study.get_trials(deepcopy=False)}
    for point in points:
        if point.key not in present:
            study.enqueue_trial(dict(point.params), {POINT_ATTR: point.key, **point.attrs})
    study.set_user_attr(ENQUEUED_ATTR, len(points))


@dataclasses.dataclass(frozen=True)
class TrialQueue:
    """A study whose queued trials workers take one at a time (see the module docstring)."""

    study: optuna.Study
    storage: optuna.storages.BaseStorage
    size: int
    claim_lock: Path | None = None
    heartbeat_interval: int = 20  # for storages without Optuna's heartbeat
    grace_period: int = 60

    @functools.cached_property
    def _study_id(self) -> int:
        return self.storage.get_study_id_from_name(self.study.study_name)

    def trial_id(self, number: int) -> int:
        """The storage's id of this study's trial `number`, which the storage calls take.

        Trial numbers count within a study and ids across the storage, so they differ once a
        storage holds two studies (every rung of a halving search is one). Read through
        Optuna's public storage interface, not the trials' private `_trial_id`.
        """
        return self.storage.get_trial_id_from_study_id_trial_number(self._study_id, number)

    def claim(self, prefer: Callable[[FrozenTrial], bool] | None = None) -> optuna.Trial | None:
        """Moves one WAITING trial to RUNNING for this worker; None when none is waiting.

        With `prefer`, waiting trials it accepts are taken first (queue order otherwise).
        """
        for attempt in range(6):
            try:
                with _file_lock(self.claim_lock):
                    return self._claim_once(prefer)
            except optuna.exceptions.StorageInternalError:
                if attempt == 5:  # SQLite under heavy contention: "database is locked"
                    raise
                time.sleep(0.5 * (attempt + 1))
        return None

    def _claim_once(self, prefer: Callable[[FrozenTrial], bool] | None) -> optuna.Trial | None:
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if prefer is not None:
            waiting = sorted(waiting, key=lambda frozen: not prefer(frozen))  # stable
        for frozen in waiting:
            trial_id = self.trial_id(frozen.number)
            try:
                if self.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                    return optuna.Trial(self.study, trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
        return None

    @contextmanager
    def heartbeat(self, trial: optuna.Trial) -> Iterator[None]:
        """Records the trial's heartbeat in a background thread while the block runs."""
        trial_id = self.trial_id(trial.number)
        native = _native_heartbeat_interval(self.storage)

        def beat_once() -> None:
            try:
                if native is not None:
                    self.storage.record_heartbeat(trial_id)
                else:
                    self.storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # finished (or failed as stale by another worker) while beating

        stop = threading.Event()
        beat_once()

        def beat() -> None:
            while not stop.wait(native or self.heartbeat_interval):
                beat_once()

        thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def retry_stale(self) -> None:
        """Fails the trials whose heartbeat stopped and re-queues each once."""
        if _native_heartbeat_interval(self.storage) is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
            return
        failed = []
        now = time.time()
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if now - _last_beat(frozen) <= self.grace_period:
                continue
            trial_id = self.trial_id(frozen.number)
            try:
                if self.storage.set_trial_state_values(trial_id, TrialState.FAIL):
                    failed.append(trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker failed it first and queues the retry
        with warnings.catch_warnings():  # the retry callback is "experimental" since 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        for trial_id in failed:
            retry(self.study, copy.deepcopy(self.storage.get_trial(trial_id)))

    def point_trials(self) -> list[FrozenTrial]:
        """All trials that carry a point key, in trial order (retried copies included)."""
        return [t for t in self.study.get_trials() if POINT_ATTR in t.user_attrs]

    def run(
        self,
        train: Callable[[optuna.Trial], None],
        *,
        poll_seconds: float = 2.0,
        on_finished: Callable[[FrozenTrial], None] | None = None,
        max_trials: int | None = None,
        prefer: Callable[[FrozenTrial], bool] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> int:
        """Trains queued trials until none is waiting or running; returns how many it trained.

        `train(trial)` must end the trial itself (`study.tell`). While other workers still
        run trials this worker keeps polling, so it takes over one whose heartbeat stops.
        With `max_trials` it returns after that many trials, and whenever `stop()` says so
        between trials. `prefer` chooses among waiting trials (see `claim`).
        """
        trained = 0
        while (max_trials is None or trained < max_trials) and not (stop and stop()):
            self.retry_stale()
            trial = self.claim(prefer)
            if trial is not None:
                with self.heartbeat(trial):
                    train(trial)
                trained += 1
                if on_finished is not None:
                    on_finished(self.study.get_trials(deepcopy=False)[trial.number])
                continue
            if not self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                return trained
            time.sleep(poll_seconds)
        return trained

    def unfinished(self) -> bool:
        """Whether any trial is still waiting or running."""
        states = (TrialState.WAITING, TrialState.RUNNING)
        return bool(self.study.get_trials(deepcopy=False, states=states))


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _native_heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    """Optuna's heartbeat interval of `storage`; None where it has none (journal files)."""
    getter = getattr(storage, "get_heartbeat_interval", None)
    return getter() if callable(getter) else None


def _last_beat(trial: FrozenTrial) -> float:
    """Unix time of a running trial's last sign of life: its beat or its claim."""
    # A retried trial inherits its failed original's beat, so the claim time must count too.
    start = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
    return max(float(trial.system_attrs.get(HEARTBEAT_ATTR, 0.0)), start)


def is_finished(trial: FrozenTrial) -> bool:
    """Whether the trial settled its point: completed, pruned, or failed with a recorded
    error (a killed trial fails without one and is retried)."""
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and "error" in trial.user_attrs)


def finished_points(trials: Sequence[FrozenTrial]) -> set[str]:
    """Keys of points that are done (see is_finished)."""
    return {t.user_attrs[POINT_ATTR] for t in trials if is_finished(t)}
