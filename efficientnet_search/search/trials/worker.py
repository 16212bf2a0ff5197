"""What every search's worker does around training a trial: claim, record, end, report.

The grid's and the NAS's workers differ in what a trial trains; the loop around it is this
one: `work_queue` claims queued trials (`TrialQueue.run`) until the queue is done or this
process has trained its share (`Share`, for `search.trials_per_process`), `end_trial` records
a trial's attributes and ends it (tolerating a retry that another worker already queued),
`progress_eta` predicts the rest from every worker's finished trials, and
`start_worker_process` sets up a spawned worker's logging as its parent's.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from absl import logging
from optuna.trial import FrozenTrial, TrialState

from efficientnet_search.search.trials.study import TrialQueue, finished_points, is_finished

ETA_WINDOW = 8  # finished trials whose pace predicts the rest


@dataclasses.dataclass
class Share:
    """How many trials this worker has trained, of at most `max_trials` (None: no limit)."""

    max_trials: int | None = None
    trained: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)

    def left(self) -> int | None:
        return None if self.max_trials is None else max(0, self.max_trials - self.trained)

    def spent(self) -> bool:
        return self.left() == 0


def work_queue(queue: TrialQueue, train: Callable[[optuna.Trial], None], share: Share, *,
               poll_seconds: float, log: Callable[[FrozenTrial], None] | None = None,
               prefer: Callable[[FrozenTrial], bool] | None = None,
               stop: Callable[[], bool] | None = None) -> bool:
    """Trains `queue`'s trials with `train` (which ends each trial) until none is left, the
    share is spent or `stop()`; `log(frozen)` after each. False when the share is spent."""
    if share.spent():
        return False

    def finished(frozen: FrozenTrial) -> None:
        share.trained += 1
        if log is not None:
            log(frozen)

    queue.run(train, on_finished=finished, max_trials=share.left(), poll_seconds=poll_seconds,
              prefer=prefer, stop=stop)  # fmt: skip
    return not share.spent()


def set_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """Records `attrs` as the trial's user attributes."""
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def end_trial(study: optuna.Study, trial: optuna.Trial, values: float | Sequence[float] | None,
              *, state: TrialState = TrialState.COMPLETE,
              attrs: Mapping[str, Any] | None = None) -> None:
    """Records `attrs`, then ends the trial with `values` (COMPLETE) or as `state`, unless
    another worker already failed it as stale: then its retry is the one that counts.

    The seconds spent recording are the `time_write_s` attribute when `attrs` are given.
    """
    start = time.perf_counter()
    try:
        if attrs:
            set_attrs(trial, attrs)
            trial.set_user_attr("time_write_s", time.perf_counter() - start)
        complete = values is not None and state == TrialState.COMPLETE
        study.tell(trial, values if complete else None, state=None if complete else state)
    except optuna.exceptions.UpdateFinishedTrialError:
        # Its heartbeat was late by more than grace_period, so another worker failed it and
        # queued a retry.
        logging.warning("trial %d was failed as stale by another worker; its retry counts "
                        "(raise search.grace_period on a busy machine)", trial.number)


def worker_id() -> str:
    """Who trained a trial: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


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


def progress_eta(queue: TrialQueue, trials: Sequence[FrozenTrial]) -> tuple[int, float | None]:
    """(finished points, seconds until the rest finish or None) of `queue` from its `trials`."""
    done = len(finished_points(trials))
    spans = [(t.datetime_start.timestamp(), t.datetime_complete.timestamp()) for t in trials
             if t.datetime_start and t.datetime_complete and is_finished(t)]
    return done, eta_seconds(spans, queue.size - done)


def duration(seconds: float | None) -> str:
    """`1m05s`, `42s`, or `?` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def start_worker_process(verbosity: int = logging.INFO) -> None:
    """A spawned worker's logging, as its parent's: absl's line format, TensorFlow's logs
    through it, flags at their defaults (absl.app does not run in a spawned process)."""
    from absl import flags

    from efficientnet_search import quiet_start

    flags.FLAGS.mark_as_parsed()
    logging.use_absl_handler()
    quiet_start.send_tensorflow_logs_through_absl()
    logging.set_verbosity(verbosity)
