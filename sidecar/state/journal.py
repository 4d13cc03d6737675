"""The durable job journal: one sqlite3 database in WAL mode inside the state directory."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from sidecar.base.errors import JournalError, StorageError
from sidecar.base.faults import FaultArea
from sidecar.base.sqlite_writes import immediate_transaction, storage_error
from sidecar.state.jobs import ALLOWED_TRANSITIONS, Flavour, Job, JobState, Transition
from sidecar.tfserving import numbering

JOURNAL_FILE_NAME: Final = "jobs.sqlite3"
"""The journal's file name inside the state directory."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    flavour TEXT,
    flavour_reason TEXT,
    attempts INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    retry_at REAL,
    source_fingerprint TEXT,
    built_by TEXT,
    installed INTEGER NOT NULL DEFAULT 0,
    converted_as INTEGER,
    PRIMARY KEY (model, version)
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_by_job ON transitions (model, version, id);
CREATE TRIGGER IF NOT EXISTS published_is_final BEFORE UPDATE ON jobs
WHEN OLD.state = 'published'
BEGIN
    SELECT RAISE(ABORT, 'a published version is final');
END;
"""

_JOB_COLUMNS = (
    "model, version, state, reason, flavour, flavour_reason, attempts, created_at, updated_at, "
    "retry_at, source_fingerprint, built_by, installed, converted_as"
)

_ADDED_COLUMNS = (("retry_at", "REAL"), ("source_fingerprint", "TEXT"), ("built_by", "TEXT"),
                  ("installed", "INTEGER NOT NULL DEFAULT 0"), ("converted_as", "INTEGER"))
"""Columns later releases added to ``jobs``; journals written before them get them on open."""


class JobJournal:
    """Records each (model, version) job and every state change, atomically and durably.

    Each change is one ``BEGIN IMMEDIATE`` transaction that reads the current
    state, checks the move is allowed, and writes it, so concurrent workers and
    processes cannot both move one job. ``synchronous=FULL`` makes a committed
    change survive power loss. Use :meth:`open`; close with :meth:`close` or a
    ``with`` block.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, clock: Callable[[], float]):
        self._db = connection
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def open(cls, state_dir: Path, *, clock: Callable[[], float]) -> JobJournal:
        """Open (creating if needed) the journal in ``state_dir``; ``clock`` gives wall seconds."""
        path = state_dir / JOURNAL_FILE_NAME
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.executescript(_SCHEMA)
            _add_missing_columns(connection)
        except OSError as exc:
            raise StorageError.from_os_error(exc, action="open the job journal", path=path,
                                             area=FaultArea.STATE) from exc
        except sqlite3.Error as exc:
            raise storage_error(exc, "open the job journal", path, area=FaultArea.STATE) from exc
        return cls(connection, path, clock)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> JobJournal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def discover(
        self, model: str, version: int, *, reason: str | None = None
    ) -> tuple[Job, bool]:
        """Record a version to build (newly seen, or a rebuild ``reason`` explains);
        return its job and whether it was new.

        A version already in the journal (published included) is returned unchanged.
        """
        with self._transaction("record a discovered version") as db:
            return _discover(db, model, version, reason, self._clock())

    def advance(
        self, model: str, version: int, to: JobState, *, reason: str | None = None,
        retry_after: float | None = None,
    ) -> Job:
        """Move a job forward to ``to``; FAILED and SKIPPED need a ``reason``.

        A FAILED job with ``retry_after`` (seconds) is due for a restart that long from now
        (:meth:`due_retries`); without it, it is restarted only by hand.
        PUBLISHED needs a flavour recorded first with :meth:`choose_flavour`.
        Raises JournalError for a move :data:`ALLOWED_TRANSITIONS` forbids.
        """
        if to in (JobState.FAILED, JobState.SKIPPED) and not reason:
            raise JournalError(f"moving to {to.value} needs a reason", where=f"{model}/{version}")
        if retry_after is not None and to is not JobState.FAILED:
            raise JournalError(f"only a failed job is retried, not a {to.value} one",
                               where=f"{model}/{version}")
        with self._transaction(f"record {to.value}") as db:
            job = _require(db, model, version)
            if to not in ALLOWED_TRANSITIONS[job.state]:
                raise JournalError(
                    f"job {model}/{version} cannot move from {job.state.value} to {to.value}",
                    where=str(self._path),
                    fix="restart() the job first, or fix the caller's order of steps",
                )
            if to is JobState.PUBLISHED and job.flavour is None:
                raise JournalError(
                    f"job {model}/{version} has no flavour to publish",
                    fix="call choose_flavour() before the version is renamed into place",
                )
            now = self._clock()
            retry_at = None if retry_after is None else now + retry_after
            db.execute(
                "UPDATE jobs SET state = ?, reason = ?, updated_at = ?, retry_at = ? "
                "WHERE model = ? AND version = ?",
                (to.value, reason, now, retry_at, model, version),
            )
            _log(db, model, version, job.state, to, reason, now)
            if to is JobState.PUBLISHED and job.converted_as is not None:
                _discover(db, model, job.converted_as, (
                    f"the converted form of {numbering.describe(version)}, whose original "
                    "was served first"), now)
            return _require(db, model, version)

    def choose_flavour(
        self, model: str, version: int, flavour: Flavour, *, why: str | None = None,
        source_fingerprint: str | None = None, built_by: str | None = None,
        installed: bool = False, converted_as: int | None = None,
    ) -> Job:
        """Record what will be published, before publishing it (so recovery knows), the
        content fingerprint of the incoming version it was built from, and in a fleet the
        replica that built it and whether this one ``installed`` it from the store.

        Publishing the ORIGINAL needs ``why``. Only a VERIFYING job takes a flavour.
        ``converted_as``, with the ORIGINAL only, records that the original is served first:
        its converted form is built as that later served number of the same incoming
        version, and is queued (DISCOVERED) in the very transaction that records this job
        PUBLISHED, so a crash can publish the original without losing its conversion.
        """
        if flavour is Flavour.ORIGINAL and not why:
            raise JournalError("publishing the original needs a reason", where=f"{model}/{version}")
        if converted_as is not None and (
                flavour is not Flavour.ORIGINAL or converted_as <= version
                or numbering.incoming_version(converted_as) != numbering.incoming_version(version)):
            raise JournalError(
                f"job {model}/{version}: only an original served first names the later "
                f"number of its incoming version its converted form takes, not {converted_as}",
                where=f"{model}/{version}")
        with self._transaction("record the flavour") as db:
            job = _require(db, model, version)
            if job.state is not JobState.VERIFYING:
                raise JournalError(
                    f"job {model}/{version} is {job.state.value}, not verifying",
                    fix="choose the flavour after verification, before publishing",
                )
            db.execute(
                "UPDATE jobs SET flavour = ?, flavour_reason = ?, source_fingerprint = ?, "
                "built_by = ?, installed = ?, converted_as = ? WHERE model = ? AND version = ?",
                (flavour.value, why, source_fingerprint, built_by, int(installed), converted_as,
                 model, version),
            )
            return _require(db, model, version)

    def restart(self, model: str, version: int, *, reason: str) -> Job:
        """Send an unfinished, failed or skipped job back to DISCOVERED; count the attempt.

        Raises JournalError for a published job: it is never redone.
        """
        with self._transaction("restart a job") as db:
            job = _require(db, model, version)
            if job.state in (JobState.PUBLISHED, JobState.DISCOVERED):
                raise JournalError(
                    f"job {model}/{version} is {job.state.value}; only unfinished, failed or "
                    "skipped jobs restart",
                )
            now = self._clock()
            db.execute(
                "UPDATE jobs SET state = ?, reason = ?, flavour = NULL, flavour_reason = NULL, "
                "source_fingerprint = NULL, built_by = NULL, installed = 0, retry_at = NULL, "
                "converted_as = NULL, "
                "attempts = attempts + 1, "
                "updated_at = ? WHERE model = ? AND version = ?",
                (JobState.DISCOVERED.value, reason, now, model, version),
            )
            _log(db, model, version, job.state, JobState.DISCOVERED, reason, now)
            return _require(db, model, version)

    def get(self, model: str, version: int) -> Job | None:
        """The job for (model, version), or None."""
        with self._read("read a job") as db:
            return _select(db, model, version)

    def jobs(self, states: Iterable[JobState] | None = None, model: str | None = None) -> list[Job]:
        """Jobs, optionally only in ``states`` and of ``model``; newest versions first."""
        query = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE 1 = 1"
        params: list[object] = []
        if states is not None:
            wanted = [state.value for state in states]
            query += f" AND state IN ({', '.join('?' for _ in wanted)})"
            params += wanted
        if model is not None:
            query += " AND model = ?"
            params.append(model)
        query += " ORDER BY version DESC, model"
        with self._read("list jobs") as db:
            return [_job(row) for row in db.execute(query, params)]

    def due_retries(self) -> list[Job]:
        """FAILED jobs whose automatic retry is due by the journal's clock, soonest due first."""
        now = self._clock()
        with self._read("list the jobs due for a retry") as db:
            rows = db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = ? AND retry_at <= ? "
                "ORDER BY retry_at, model, version",
                (JobState.FAILED.value, now),
            ).fetchall()
        return [_job(row) for row in rows]

    def interrupted(self) -> list[Job]:
        """Jobs a worker owned when the process stopped (converting, building, verifying)."""
        return self.jobs([s for s in JobState if s.is_intermediate])

    def served_first(self, model: str, converted: int) -> Job | None:
        """The job of the original served first whose converted form is ``converted``
        (:meth:`choose_flavour`'s ``converted_as``), or None."""
        with self._read("read the original served first") as db:
            row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE model = ? AND "
                             "converted_as = ?", (model, converted)).fetchone()
        return _job(row) if row else None

    def originals_served_first(self, model: str) -> list[int]:
        """The served numbers of ``model``'s PUBLISHED originals that were served first
        (each with a converted form queued or built), ascending."""
        with self._read("list the originals served first") as db:
            rows = db.execute("SELECT version FROM jobs WHERE model = ? AND state = ? AND "
                              "converted_as IS NOT NULL ORDER BY version",
                              (model, JobState.PUBLISHED.value)).fetchall()
        return [int(version) for (version,) in rows]

    def published_versions(self, model: str) -> list[int]:
        """Versions of ``model`` the journal has published, ascending."""
        return sorted(job.version for job in self.jobs([JobState.PUBLISHED], model))

    def history(self, model: str, version: int) -> list[Transition]:
        """Every state change of the job, oldest first."""
        with self._read("read job history") as db:
            rows = db.execute(
                "SELECT from_state, to_state, reason, at FROM transitions "
                "WHERE model = ? AND version = ? ORDER BY id",
                (model, version),
            ).fetchall()
        return [
            Transition(JobState(f) if f else None, JobState(t), reason, at)
            for f, t, reason, at in rows
        ]

    def stage_timings(self, model: str, version: int) -> dict[JobState, float]:
        """Seconds the latest attempt spent in each state it has left."""
        history = self.history(model, version)
        starts = [i for i, t in enumerate(history) if t.to_state is JobState.DISCOVERED]
        attempt = history[starts[-1]:] if starts else history
        return {
            entered.to_state: left.at - entered.at
            for entered, left in itertools.pairwise(attempt)
        }

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                with immediate_transaction(self._db) as db:
                    yield db
            except sqlite3.IntegrityError as exc:
                raise JournalError(f"could not {action}: {exc}", where=str(self._path)) from exc
            except sqlite3.Error as exc:
                raise storage_error(exc, action, self._path, area=FaultArea.STATE) from exc

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise storage_error(exc, action, self._path, area=FaultArea.STATE) from exc


def _add_missing_columns(db: sqlite3.Connection) -> None:
    present = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    for name, kind in _ADDED_COLUMNS:
        if name not in present:
            db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")


def _discover(db: sqlite3.Connection, model: str, version: int, reason: str | None,
              now: float) -> tuple[Job, bool]:
    """The job of (model, version), inserted DISCOVERED unless it exists; whether it is new."""
    existing = _select(db, model, version)
    if existing is not None:
        return existing, False
    db.execute(
        f"INSERT INTO jobs ({_JOB_COLUMNS}) "
        "VALUES (?, ?, ?, ?, NULL, NULL, 1, ?, ?, NULL, NULL, NULL, 0, NULL)",
        (model, version, JobState.DISCOVERED.value, reason, now, now),
    )
    _log(db, model, version, None, JobState.DISCOVERED, reason, now)
    return _require(db, model, version), True


def _select(db: sqlite3.Connection, model: str, version: int) -> Job | None:
    row = db.execute(
        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE model = ? AND version = ?", (model, version)
    ).fetchone()
    return _job(row) if row else None


def _require(db: sqlite3.Connection, model: str, version: int) -> Job:
    job = _select(db, model, version)
    if job is None:
        raise JournalError(
            f"no job for {model}/{version}", fix="discover() the version before moving it"
        )
    return job


def _job(row: tuple[Any, ...]) -> Job:
    (model, version, state, reason, flavour, flavour_reason, attempts, created, updated,
     retry_at, source_fingerprint, built_by, installed, converted_as) = row
    return Job(
        model=str(model),
        version=int(version),
        state=JobState(state),
        reason=reason if reason is None else str(reason),
        flavour=Flavour(flavour) if flavour else None,
        flavour_reason=flavour_reason if flavour_reason is None else str(flavour_reason),
        attempts=int(attempts),
        created_at=float(created),
        updated_at=float(updated),
        retry_at=None if retry_at is None else float(retry_at),
        source_fingerprint=None if source_fingerprint is None else str(source_fingerprint),
        built_by=None if built_by is None else str(built_by),
        installed=bool(installed),
        converted_as=None if converted_as is None else int(converted_as),
    )


def _log(
    db: sqlite3.Connection,
    model: str,
    version: int,
    before: JobState | None,
    after: JobState,
    reason: str | None,
    at: float,
) -> None:
    db.execute(
        "INSERT INTO transitions (model, version, from_state, to_state, reason, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (model, version, before.value if before else None, after.value, reason, at),
    )
