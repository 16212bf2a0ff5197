"""Exactly-once queues, heartbeat retry and storages of search/study.py (no TensorFlow)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from efficientnet_search.search.trials import storage as storage_lib
from efficientnet_search.search.trials import study as study_lib

# A worker process: trains points with a fake `train` that logs each key it trains, sleeping
# 60 seconds on the point named by argv[4] (to be killed there). Its first trial waits until
# argv[5] workers have started one (at most 60 s): the queue is done in about a second, less
# than the spread of two processes' start-up, so without the wait one worker could take every
# point before the other has opened the study.
WORKER = textwrap.dedent(
    """
    import os, sys, time
    from efficientnet_search.search.trials import study as study_lib

    url, log, n, slow_key = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    peers = int(sys.argv[5])
    points = [study_lib.Point(f"p{i}", {"x": float(i)}) for i in range(n)]
    queue = study_lib.open_queue(url, "test", points, heartbeat_interval=1, grace_period=3)
    trained = 0

    def started_workers():
        with open(log) as handle:
            return len({line.split()[2] for line in handle if line.startswith("start")})

    def train(trial):
        global trained
        key = trial.user_attrs["point"]
        with open(log, "a") as handle:
            handle.write(f"start {key} {os.getpid()}\\n")
        deadline = time.monotonic() + 60
        while not trained and started_workers() < peers and time.monotonic() < deadline:
            time.sleep(0.05)
        trained += 1
        time.sleep(60 if key == slow_key else 0.05)
        value = trial.suggest_float("x", 0.0, 100.0)
        queue.study.tell(trial, value)
        with open(log, "a") as handle:
            handle.write(f"done {key} {os.getpid()}\\n")

    queue.run(train, poll_seconds=0.5)
    """
)


def _start(tmp_path: Path, url: str, n: int, slow_key: str = "-",
           peers: int = 1) -> subprocess.Popen:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    log = tmp_path / "trained.log"
    return subprocess.Popen([sys.executable, str(script), url, str(log), str(n), slow_key,
                             str(peers)])  # fmt: skip


def _log(tmp_path: Path, event: str) -> list[str]:
    path = tmp_path / "trained.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split()[1] for line in lines if line.startswith(event)]


def _load(url: str) -> optuna.Study:
    return optuna.load_study(study_name="test", storage=storage_lib.open_storage(url))


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_workers_train_every_point_exactly_once(tmp_path, kind):
    url = f"sqlite:///{tmp_path}/study.db" if kind == "sqlite" else f"journal:{tmp_path}/j.log"
    n = 16
    workers = [_start(tmp_path, url, n, peers=2) for _ in range(2)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]

    assert sorted(_log(tmp_path, "done")) == sorted(f"p{i}" for i in range(n))
    trials = _load(url).get_trials()
    assert len(trials) == n  # nothing enqueued twice by the two starting workers
    assert all(t.state == TrialState.COMPLETE for t in trials)
    pids = {line.split()[2] for line in (tmp_path / "trained.log").read_text().splitlines()}
    assert len(pids) == 2  # both workers took part


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_killed_trial_is_retried_and_finished_trials_are_kept(tmp_path, kind):
    url = f"sqlite:///{tmp_path}/study.db" if kind == "sqlite" else f"journal:{tmp_path}/j.log"
    worker = _start(tmp_path, url, 3, slow_key="p1")
    deadline = time.monotonic() + 60
    while "p1" not in _log(tmp_path, "start") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "p1" in _log(tmp_path, "start"), "the worker never reached the second point"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    before = {t.number: t for t in _load(url).get_trials()}
    assert before[0].state == TrialState.COMPLETE and before[1].state == TrialState.RUNNING

    rerun = _start(tmp_path, url, 3, slow_key="-")
    assert rerun.wait(timeout=60) == 0

    after = _load(url).get_trials()
    assert after[0].datetime_complete == before[0].datetime_complete  # not retrained
    assert _log(tmp_path, "done").count("p0") == 1
    assert after[1].state == TrialState.FAIL  # the killed one, failed by its stale heartbeat
    done = [t.user_attrs["point"] for t in after if t.state == TrialState.COMPLETE]
    assert sorted(done) == ["p0", "p1", "p2"]
    retried = [t for t in after if t.system_attrs.get("failed_trial") == 1]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert study_lib.finished_points(after) == {"p0", "p1", "p2"}


def test_joining_a_study_with_other_points_is_refused(tmp_path):
    storage = storage_lib.open_storage(f"sqlite:///{tmp_path}/s.db")
    study_lib.open_study(storage, "s", [study_lib.Point("a", {"x": 1.0})])
    with pytest.raises(ValueError, match="holds 1 points but this config has 2"):
        study_lib.open_study(
            storage, "s", [study_lib.Point("a", {"x": 1.0}), study_lib.Point("b", {"x": 2.0})]
        )


def test_reopening_does_not_enqueue_again(tmp_path):
    storage = storage_lib.open_storage(f"sqlite:///{tmp_path}/s.db")
    points = [study_lib.Point(f"p{i}", {"x": float(i)}) for i in range(3)]
    study_lib.open_study(storage, "s", points)
    queue = study_lib.open_study(storage, "s", points, wait_seconds=0)
    assert len(queue.study.get_trials()) == 3
    assert queue.claim().user_attrs["point"] == "p0"


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_claims_and_heartbeats_touch_only_their_own_study(tmp_path, kind):
    # Two studies in one storage (as a halving search's rungs are): trial numbers restart at 0
    # in the second, storage ids do not, so confusing the two would move the wrong trial.
    url = (f"sqlite:///{tmp_path}/s.db" if kind == "sqlite"
           else f"journal:{tmp_path}/s.log")  # fmt: skip
    storage = storage_lib.open_storage(url)
    first = study_lib.open_study(storage, "r0", [study_lib.Point(f"a{i}", {"x": 1.0})
                                                 for i in range(3)])  # fmt: skip
    second = study_lib.open_study(storage, "r1", [study_lib.Point(f"b{i}", {"x": 2.0})
                                                  for i in range(2)])  # fmt: skip
    trial = second.claim()
    assert trial.user_attrs["point"] == "b0"
    with second.heartbeat(trial):
        second.study.tell(trial, 1.0)
    states = {t.user_attrs["point"]: t.state for t in first.study.get_trials()}
    assert set(states.values()) == {TrialState.WAITING}, states
    assert [t.state for t in second.study.get_trials()] == [TrialState.COMPLETE,
                                                           TrialState.WAITING]


def test_interrupted_enqueue_is_completed_by_the_next_worker(tmp_path):
    storage = storage_lib.open_storage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.enqueue_trial({"x": 0.0}, {study_lib.POINT_ATTR: "p0"})  # creator died here
    points = [study_lib.Point(f"p{i}", {"x": float(i)}) for i in range(3)]
    queue = study_lib.open_study(storage, "s", points, wait_seconds=0.1)
    keys = [t.user_attrs["point"] for t in queue.study.get_trials()]
    assert keys == ["p0", "p1", "p2"]


def test_storage_urls(tmp_path):
    assert storage_lib.storage_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/study.db"
    assert storage_lib.storage_url("postgresql://h/db", tmp_path) == "postgresql://h/db"
    journal = storage_lib.open_storage(str(tmp_path / "shared" / "study.log"))
    assert isinstance(journal, optuna.storages.JournalStorage)
    with pytest.raises(ValueError, match="storage must be an Optuna URL.*got 'nonsense'"):
        storage_lib.open_storage("nonsense")


def test_unreachable_or_unknown_storages_fail_with_one_line_that_hides_the_password():
    started = time.monotonic()
    with pytest.raises(ValueError) as refused:  # nothing listens on port 1: refused at once
        storage_lib.open_storage("postgresql+psycopg2://me:secret@127.0.0.1:1/db")
    message = str(refused.value)
    assert "\n" not in message and "secret" not in message and "me:***@127.0.0.1:1" in message
    assert "Connection refused" in message and "server is running" in message
    assert time.monotonic() - started < 5  # a refused connection is not retried as a race
    with pytest.raises(ValueError, match="install its driver"):
        storage_lib.open_storage("mysql+nosuchdriver://me@host/db")


def test_schema_creation_race_is_retried_until_the_winner_is_done(monkeypatch, tmp_path):
    import sqlalchemy.exc

    real = storage_lib._new_rdb_storage
    errors = [sqlalchemy.exc.ProgrammingError("CREATE TYPE", {}, Exception("already exists")),
              sqlalchemy.exc.IntegrityError("CREATE TABLE", {}, Exception("duplicate key"))]

    def lose_twice(*args, **kwargs):
        if errors:
            raise errors.pop(0)
        return real(*args, **kwargs)

    monkeypatch.setattr(storage_lib, "_new_rdb_storage", lose_twice)
    storage = storage_lib.open_storage(f"sqlite:///{tmp_path}/s.db")
    assert not errors and isinstance(storage, optuna.storages.RDBStorage)


def test_workers_starting_together_on_a_fresh_postgresql_database_all_get_in(postgres_url):
    import random
    import threading

    import sqlalchemy

    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    for round_ in range(3):  # the bare RDBStorage loses this race in most rounds
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"CREATE DATABASE fresh{round_}"))
        url = postgres_url.rsplit("/", 1)[0] + f"/fresh{round_}"
        failures: list[BaseException] = []

        def join(url=url, failures=failures) -> None:
            time.sleep(random.random() * 0.2)
            try:
                storage_lib.open_storage(url)
            except BaseException as err:  # noqa: BLE001 - reported by the assert below
                failures.append(err)

        workers = [threading.Thread(target=join) for _ in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert failures == []
        queue = study_lib.open_queue(url, "s", [study_lib.Point("a", {"x": 1.0})])
        assert queue.claim() is not None
    admin.dispose()


def test_journal_heartbeat_retries_a_silent_trial_once_and_spares_a_beating_one(tmp_path):
    url = f"journal:{tmp_path}/j.log"
    points = [study_lib.Point("a", {"x": 1.0}), study_lib.Point("b", {"x": 2.0})]
    # Two workers, each with its own storage handle.
    first, second = (study_lib.open_queue(url, "test", points, heartbeat_interval=1,
                                          grace_period=2) for _ in range(2))  # fmt: skip
    silent, beating = first.claim(), second.claim()  # silent: its worker "died" after claiming
    with second.heartbeat(beating):
        time.sleep(3)
        first.retry_stale()
        second.retry_stale()  # sees the failure and must not queue a second retry
    trials = _load(url).get_trials()
    assert trials[silent.number].state == TrialState.FAIL
    assert trials[beating.number].state == TrialState.RUNNING
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == silent.number]
    assert [t.state for t in retries] == [TrialState.WAITING]
    assert retries[0].user_attrs["point"] == trials[silent.number].user_attrs["point"]
