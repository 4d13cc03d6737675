"""Errors raised by the shape store.

`ShapeStoreError` is the root. `ShapeStoreSettingsError` is a user error (bad
configuration, fix the setting); `ShapeStoreCorruptError` means the state file
cannot be read as a shape store (move it aside; the store rebuilds from traffic);
`ShapeStoreWriteError` is a storage fault (retryable, see `sidecar.errors.StorageError`).
"""

from __future__ import annotations

from sidecar.errors import StorageError


class ShapeStoreError(Exception):
    """Root of every error the shape store raises."""


class ShapeStoreSettingsError(ShapeStoreError, ValueError):
    """A shape-store setting is invalid; the message names the field and the fix."""


class ShapeStoreCorruptError(ShapeStoreError):
    """The state database exists but is not a usable shape store."""


class ShapeStoreWriteError(ShapeStoreError, StorageError):
    """The database refused a write (state disk full, read-only, I/O error); nothing of
    the batch was stored, and later writes succeed once the storage is fixed."""
