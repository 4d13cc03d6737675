"""Errors of the fleet store: each a :class:`~sidecar.base.errors.SidecarError`.

- :class:`FleetStoreError`: the shared volume refused (full, read-only, gone): a storage
  fault, retryable once the volume is fixed.
- :class:`FleetArgumentError`: a key names no model version the sidecar serves, a replica
  id is no file name or is held by another live replica, or a lease is not positive: a
  user error.
- :class:`LeaseLostError`: this replica's lease on a key was revoked (it stopped renewing
  for longer than the lease, e.g. paused or cut off) or was already ended; its work on the
  key is discarded. Not retryable as such: the key is someone else's now.
- :class:`StoreFormatError`: the directory is not a fleet store of this format.
- :class:`DamagedArtifactError`: a completed artifact is not what its builder completed;
  the installer refuses it and the fleet builds the key again. Retryable.
"""

from __future__ import annotations

from typing import ClassVar

from sidecar.base.errors import SidecarError, StorageError, UserError
from sidecar.base.faults import FaultArea


class FleetError(SidecarError):
    """Root of every error the fleet store raises."""


class FleetStoreError(FleetError, StorageError):
    """The shared volume refused an operation; retrying after it is fixed can succeed."""

    area = FaultArea.STORE


class FleetArgumentError(FleetError, UserError):
    """A key's model, version, TensorFlow version or device slug, a replica id (or one a
    live replica holds) or a lease duration is not one the store takes; the message names
    which and the fix."""


class LeaseLostError(FleetError):
    """The lease is no longer this replica's: nothing it does under it reaches the store."""


class StoreFormatError(FleetError, UserError):
    """The store directory holds something else than a fleet store of this format."""


class DamagedArtifactError(FleetError):
    """A completed artifact is not what its builder completed: its record cannot be read,
    its completion names no artifact of its generation, a file differs from the manifest
    its builder recorded, or its model does not load here.

    ``generation`` is the completed generation found damaged: the installer refuses it
    (:meth:`~sidecar.fleet.store.FleetStore.reject`), so the fleet builds the key again
    under a new lease. Retryable: a retry installs the rebuilt artifact, or, once the key
    was refused too often to be rebuilt by itself, builds it again after an operator
    removed the key's directory.
    """

    retryable: ClassVar[bool] = True

    def __init__(self, what: str, *, where: str, generation: int, fix: str = "") -> None:
        self.generation = generation
        super().__init__(what, where=where, fix=fix or (
            "nothing to do: this replica refuses it, and the fleet builds the key again "
            "under a new lease and installs that"))
