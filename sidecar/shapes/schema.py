"""The shape store's sqlite schema and how its database is opened (WAL, schema version)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sidecar.shapes.errors import ShapeStoreCorruptError

SCHEMA_VERSION = 1
DATABASE_NAME = "shapes.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shape_counts (
    model TEXT NOT NULL,
    signature TEXT NOT NULL,
    shape_key TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (model, signature, shape_key, bucket)
);
CREATE INDEX IF NOT EXISTS shape_counts_by_bucket ON shape_counts (bucket);
CREATE TABLE IF NOT EXISTS refusals (
    model TEXT NOT NULL,
    signature TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (model, signature, reason)
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    signature TEXT NOT NULL,
    method TEXT NOT NULL,
    received_at REAL NOT NULL,
    size INTEGER NOT NULL,
    request BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_by_model ON samples (model, id);
"""


def open_database(state_dir: Path) -> sqlite3.Connection:
    """Open (creating if needed) the shape database in `state_dir`, in WAL mode.

    The connection may be used from any thread; the caller serialises access.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / DATABASE_NAME
    try:
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(_SCHEMA)
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            connection.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        elif row[0] != str(SCHEMA_VERSION):
            connection.close()
            raise ShapeStoreCorruptError(
                f"{path} has shape-store schema {row[0]}, this sidecar reads {SCHEMA_VERSION}; "
                "move the file aside to start a fresh store"
            )
    except sqlite3.DatabaseError as error:
        raise ShapeStoreCorruptError(
            f"{path} is not a usable shape store ({error}); move it aside to start afresh"
        ) from error
    return connection
