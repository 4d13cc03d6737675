"""One way to write to the sidecar's sqlite databases (the job journal, the shape store).

A write is one ``BEGIN IMMEDIATE`` ... ``COMMIT``. When a statement or the commit
fails, sqlite may already have ended the transaction itself (it does on
``SQLITE_FULL``, ``SQLITE_IOERR`` and others), so a blind ``ROLLBACK`` would fail
with "cannot rollback - no transaction is active" and hide the real error. Here the
rollback runs only while a transaction is open, and the error the caller sees is
always the one that broke the write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sidecar.base.errors import StorageError
from sidecar.base.faults import FaultArea


@contextmanager
def immediate_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in one write transaction on ``db`` (opened with ``isolation_level=None``).

    Commits when the block ends; on any error rolls back what is still open and
    re-raises the original error (a failed rollback is attached to it as a note).
    The caller serialises access to ``db`` and turns ``sqlite3.Error`` into its own
    error (:func:`storage_error`).
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException as exc:
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error as rollback_error:
                exc.add_note(f"rolling back afterwards failed too: {rollback_error}")
        raise


def storage_error(
    exc: sqlite3.Error, action: str, path: Path, *,
    error_type: type[StorageError] = StorageError, area: FaultArea | None = None,
) -> StorageError:
    """A clear, retryable error for ``exc``, raised while trying to ``action`` on ``path``
    in ``area`` (None: the area ``error_type`` names).

    The fix names what to do for a full disk, a read-only or missing directory, and
    anything else sqlite reports.
    """
    text = str(exc)
    if "full" in text:
        fix = (f"free space on the filesystem holding {path.parent} (or enlarge it); "
               "the sidecar retries by itself once there is room")
    elif "readonly" in text or "unable to open" in text:
        fix = f"make {path.parent} writable by the sidecar's user"
    elif "disk I/O" in text:
        fix = f"check the volume holding {path.parent} (kernel log, mount); the sidecar retries"
    else:
        fix = f"check {path} (sqlite reports: {text}); restore it from a backup if it is corrupt"
    return error_type(f"could not {action}: {text}", where=str(path), fix=fix, area=area)
