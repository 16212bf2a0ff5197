"""Optuna storages opened from one URL, for every search of the project.

`sqlite:///PATH` (the default, a file in the run directory), any SQLAlchemy URL
(`postgresql://...`, `mysql+pymysql://...`), or a journal file on shared disk written as
`journal:PATH` or a path ending in `.log`/`.journal`. RDB storages get Optuna's heartbeat and
the retry of stale trials (`study.py` says how trials use them); workers racing to create a
fresh database's schema retry instead of failing.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

MAX_RETRY = 3  # a trial that kills its process every time is given up after 3 retries


def storage_url(storage: str | None, run_dir: str | Path) -> str:
    """Returns the storage URL to use: `storage` as given, or SQLite in `run_dir`."""
    if storage:
        return storage
    return f"sqlite:///{Path(run_dir).resolve() / 'study.db'}"


def open_storage(
    url: str, *, heartbeat_interval: int | None = 20, grace_period: int | None = 60
) -> optuna.storages.BaseStorage:
    """Opens an Optuna storage from a URL or journal path, with heartbeat where supported."""
    journal = _journal_path(url)
    if journal is not None:
        from optuna.storages.journal import JournalFileBackend

        journal.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    if "://" not in url:
        raise ValueError(
            f"storage must be an Optuna URL (sqlite:///PATH, postgresql://..., mysql://...) or "
            f"a journal file (journal:PATH, *.log), got {url!r}"
        )
    if heartbeat_interval is not None and heartbeat_interval < 1:
        raise ValueError(f"heartbeat_interval must be >= 1 second, got {heartbeat_interval!r}")
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    with warnings.catch_warnings():  # heartbeat and retry are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _rdb_storage(_installed_driver(url), engine_kwargs, heartbeat_interval,
                            grace_period)


def check_storage(storage: str | None) -> None:
    """Opens a search's `--storage` once, before any planning or writing, so that a bad URL
    or an unreachable server fails with one line and leaves no run behind. The default
    (SQLite in the run directory) and journal files are created by the search itself."""
    if storage is None or _journal_path(storage) is not None:
        return
    open_storage(storage, heartbeat_interval=None, grace_period=None)


def _installed_driver(url: str) -> str:
    """`postgresql://` with the driver that is installed: SQLAlchemy 2.1 reads it as psycopg
    (3), 2.0 as psycopg2, and this package's `postgres` extra installs psycopg2."""
    import importlib.util

    if (url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None
            and importlib.util.find_spec("psycopg2") is not None):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def _rdb_storage(url: str, engine_kwargs: dict | None, heartbeat_interval: int | None,
                 grace_period: int | None) -> RDBStorage:
    import sqlalchemy.exc

    # Workers started together on a fresh database race to create its schema. PostgreSQL
    # refuses the loser's CREATE with a unique violation (IntegrityError) or "already exists"
    # (ProgrammingError); SQLite says "database is locked" and some MySQL drivers report
    # "already exists" as an OperationalError. The loser waits and opens the
    # tables the winner made (create_all skips those that exist).
    attempts = 6
    for attempt in range(attempts):
        try:
            return _new_rdb_storage(url, engine_kwargs, heartbeat_interval, grace_period)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError) as err:  # fmt: skip
            racing = (not isinstance(err, sqlalchemy.exc.OperationalError)
                      or any(word in str(err) for word in ("locked", "already exists")))
            if not racing or attempt == attempts - 1:
                raise _storage_error(url, err) from err
            time.sleep(0.2 * 2**attempt)
        except (ImportError, sqlalchemy.exc.ArgumentError) as err:  # driver missing, bad URL
            raise _storage_error(url, err) from err
    raise AssertionError("unreachable")


def _storage_error(url: str, err: Exception) -> ValueError:
    """A one-line error naming the storage (password hidden), the cause and the fix."""
    import sqlalchemy.engine
    import sqlalchemy.exc

    shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    cause = str(getattr(err, "orig", None) or err.__cause__ or err).strip().splitlines()[0]
    if not isinstance(err, sqlalchemy.exc.DBAPIError):
        fix = ("write a SQLAlchemy URL such as postgresql+psycopg2://USER@HOST/DB and install "
               "its driver (PostgreSQL: pip install psycopg2-binary; MySQL: pip install pymysql)")
    elif url.startswith("sqlite"):
        fix = "check that the file's folder exists and is writable (sqlite:///PATH)"
    else:
        fix = ("check that the database server is running and reachable and that the URL's "
               "user, password, host, port and database are right")  # fmt: skip
    return ValueError(f"cannot open the study storage {shown}: {cause}; {fix}")


def _new_rdb_storage(url: str, engine_kwargs: dict | None, heartbeat_interval: int | None,
                     grace_period: int | None) -> RDBStorage:
    return RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
    )


def _journal_path(url: str) -> Path | None:
    if url.startswith("journal:"):
        return Path(url.removeprefix("journal:"))
    if "://" not in url and url.endswith((".log", ".journal")):
        return Path(url)
    return None


def sqlite_claim_lock(url: str) -> Path | None:
    """The lock file that makes claims atomic on SQLite (None for other storages).

    Optuna's claim reads the trial, then updates it; PostgreSQL and MySQL lock the row
    (SELECT ... FOR UPDATE) and the journal orders operations, but SQLite's driver reads
    outside the write transaction, so two processes could both claim one trial (seen in
    tests). SQLite files are local, so an flock beside the file serializes the claims.
    """
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return None
    return Path(url.removeprefix("sqlite:///") + ".claim.lock")
