"""Errors raised by the shape store: each a :class:`~sidecar.base.errors.SidecarError`.

`ShapeStoreError` is the store's branch of the sidecar's hierarchy.
`ShapeStoreCorruptError` means the state file cannot be read as a shape store (move it
aside; the store rebuilds from traffic) and `ShapeStoreWriteError` that the database
refused a write: both are storage faults (retryable once the storage is fixed, see
`sidecar.base.errors.StorageError`).
"""

from __future__ import annotations

from sidecar.base.errors import SidecarError, StorageError
from sidecar.base.faults import FaultArea


class ShapeStoreError(SidecarError):
    """Root of every error the shape store raises."""


class ShapeStoreCorruptError(ShapeStoreError, StorageError):
    """The state database exists but is not a usable shape store; once it is moved aside,
    the store starts empty and fills from traffic again."""

    area = FaultArea.STATE


class ShapeStoreWriteError(ShapeStoreError, StorageError):
    """The database refused a write (state disk full, read-only, I/O error); nothing of
    the batch was stored, and later writes succeed once the storage is fixed."""

    area = FaultArea.STATE
