"""Scoring spread over worker processes through the shared trial queue.

    efficientnet-search oneshot --config C --run_dir RUN --workers 2 [--storage URL]

The proposals that do not depend on any score, random search's and evolution's first
population (drawn from the searches' own seeds, `search.py`), are known once the supernet is
trained. They become one study of the shared queue (`search/trials/study.py`: each point
queued once, claimed by one worker, re-queued if its worker dies), one point per distinct
network. `workers` local processes (`trials/processes.py`) each prepare the run as the run
does (`prepare.py`: the same data, recalibration subset and restored supernet), score what
they claim and leave the record on the trial; workers on other machines are the same
command against the same `--storage`, with RUN on a shared file system (they read its
supernet checkpoint). The run then adds the records to scored.csv in proposal order, so the
CSV, and every search over it, is the one a single process writes. The proposals that do
depend on scores (evolution's children, TPE, NSGA-II) are scored by the run itself, one at a
time, as before. A re-run finds finished points in the study and scores only the rest.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from absl import logging
from optuna.trial import TrialState

from efficientnet_search import config as config_lib
from efficientnet_search.search.nas.oneshot.config import OneShotConfig
from efficientnet_search.search.nas.oneshot.elastic import ElasticSpace
from efficientnet_search.search.trials import processes as local_workers
from efficientnet_search.search.trials import storage as storage_lib
from efficientnet_search.search.trials import study as study_lib
from efficientnet_search.search.trials import worker as trial_work

STUDY = "oneshot-scores"
RECORD_ATTR = "record"
CHOICE_ATTR = "choice"


def independent_proposals(elastic: ElasticSpace, config: OneShotConfig) -> list[dict[str, Any]]:
    """Random search's proposals, then evolution's first population, as the searches draw
    them (search.py: random search seeded with `seed`, evolution with `seed + 1`)."""
    section = config.oneshot
    rng = random.Random(section.seed)
    randoms = [elastic.sample(rng) for _ in range(section.random_trials)]
    rng = random.Random(section.seed + 1)
    first = [elastic.sample(rng) for _ in range(min(section.population,
                                                    section.evolution_trials))]  # fmt: skip
    return randoms + first


def points(scorer, proposals: Sequence[Mapping[str, Any]]) -> list[study_lib.Point]:
    """One queue point per distinct network of `proposals`, in proposal order."""
    seen: dict[str, study_lib.Point] = {}
    for params in proposals:
        key = scorer.key(params)
        seen.setdefault(key, study_lib.Point(key, {}, {CHOICE_ATTR: dict(params)}))
    return list(seen.values())


def spread_scores(config: OneShotConfig, scorer, proposals: Sequence[Mapping[str, Any]],
                  run_dir: str | Path, *, workers: int, storage: str | None,
                  threads: int | None) -> int:
    """Scores `proposals` on `workers` processes (or joins other machines' workers on
    `storage`); adds every record to `scorer` in proposal order. Returns how many were new."""
    queue = open_scores(config, scorer, proposals, run_dir, storage)
    if queue.unfinished():
        logging.info("oneshot: %d networks to score on %d worker processes (storage %s)",
                     queue.size, workers, storage or "SQLite in the run directory")
        args = (config_lib.to_dict(config), str(run_dir), storage, threads)
        local_workers.run_processes(process_main, args, workers=workers, threads=threads,
                                    finished=lambda: not queue.unfinished(), restart=0,
                                    name="oneshot-scorer")  # fmt: skip
    scored = {t.user_attrs[study_lib.POINT_ATTR]: t.user_attrs[RECORD_ATTR]
              for t in queue.point_trials() if t.state == TrialState.COMPLETE}  # fmt: skip
    missing = [p.key for p in points(scorer, proposals) if p.key not in scored]
    if missing:
        raise RuntimeError(f"{len(missing)} network(s) were not scored (a worker failed: see "
                           "its log); re-run the same command to retry them")
    before = len(scorer.records)
    for point in points(scorer, proposals):  # proposal order: the CSV a single process writes
        scorer.add(scored[point.key])
    return len(scorer.records) - before


def open_scores(config: OneShotConfig, scorer, proposals, run_dir: str | Path,
                storage: str | None) -> study_lib.TrialQueue:
    """The scoring study of this run (created with its points, or joined)."""
    url = storage_lib.storage_url(storage, run_dir)
    return study_lib.open_queue(url, STUDY, points(scorer, proposals))


def work(queue: study_lib.TrialQueue, scorer) -> int:
    """Scores claimed points until none is left; returns how many this process scored."""

    def score(trial) -> None:
        frozen = queue.study.get_trials(deepcopy=False)[trial.number]
        record = scorer.measure(frozen.user_attrs[CHOICE_ATTR])
        trial_work.end_trial(queue.study, trial, record["score"],
                             attrs={RECORD_ATTR: record, "worker": trial_work.worker_id()})

    return queue.run(score, poll_seconds=1.0)


def process_main(config_dict: dict, run_dir: str, storage: str | None,
                 threads: int | None) -> None:
    """Entry point of a spawned scoring worker: prepare the run, then score claimed points."""
    from efficientnet_search.search.nas.oneshot.prepare import prepare
    from efficientnet_search.search.proxy.trainer import configure_threads

    trial_work.start_worker_process(logging.WARNING)
    config = config_lib.from_dict(OneShotConfig, config_dict)
    configure_threads(threads)
    prepared = prepare(config, run_dir)
    proposals = independent_proposals(prepared.elastic, config)
    queue = open_scores(config, prepared.scorer, proposals, run_dir, storage)
    scored = work(queue, prepared.scorer)
    logging.info("oneshot scorer %s: %d networks scored", trial_work.worker_id(), scored)


def check_workers(workers: int, storage: str | None) -> None:
    """Bad --workers or --storage: one line, before anything is written."""
    if workers < 1:
        raise config_lib.ConfigError(f"--workers {workers}: give 1 or more worker processes")
    storage_lib.check_storage(storage)
