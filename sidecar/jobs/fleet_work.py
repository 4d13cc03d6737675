"""A job's part in a fleet: its key, its claim on the key, completing the key's artifact.

A job of a replica with a store (``--store``) claims its key (model, served version,
TensorFlow version, device slug) before it reads the model
(:class:`~sidecar.fleet.lease.LeaseBook`):

- a :class:`~sidecar.fleet.lease.Lease`: this replica builds; the lease is renewed while
  the job runs (:class:`~sidecar.fleet.renewal.LeaseKeeper`), and the staged version is
  completed into the store before it is published here;
- :class:`~sidecar.fleet.lease.Completed`: the job installs the key's artifact instead of
  building it, once its copy matches the artifact's manifest and loads; a damaged one is
  refused (:meth:`FleetClaim.reject`), so the key is built again under a new lease;
- :class:`~sidecar.fleet.lease.Held`: another replica builds it; the job waits its turn.

Without a store, :class:`FleetClaim` says so and the job runs alone, as it always did.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sidecar.fleet import (
    ArtifactRecord,
    ClaimResult,
    Completed,
    DamagedArtifactError,
    FleetKey,
    FleetStore,
    FleetStoreError,
    Lease,
    LeaseKeeper,
    LeaseLostError,
)
from sidecar.fleet.lease import MAX_REJECTIONS

_LOG = logging.getLogger("sidecar.jobs")


@dataclass(frozen=True)
class FleetContext:
    """The store a replica shares with its fleet, and what this replica builds for."""

    store: FleetStore
    """The fleet's shared store."""

    tensorflow: str
    """``tf.__version__`` of this replica."""

    slug: str
    """This replica's device slug (:attr:`converter.BuildDevice.slug`)."""

    def key(self, model: str, served: int) -> FleetKey:
        """The key of ``model``'s served version ``served`` for this replica's device."""
        return FleetKey(model, served, self.tensorflow, self.slug)


@dataclass(frozen=True)
class FleetOrigin:
    """Where a version published in a fleet came from."""

    built_by: str
    """The replica that built it."""

    installed: bool
    """True: this replica installed it from the store; False: it built it."""

    took_over_from: str | None = None
    """The replica whose expired lease this replica revoked to build it."""


class FleetClaim:
    """One job's claim on its key; inert without a store (``context`` None)."""

    def __init__(self, context: FleetContext | None, model: str, served: int) -> None:
        self._context = context
        self._key = None if context is None else context.key(model, served)
        self._lease: Lease | None = None
        self._completed: Completed | None = None
        self._keeper: LeaseKeeper | None = None

    def claim(self) -> ClaimResult | None:
        """Claim the key (None without a store); a Lease is then this job's to end."""
        if self._context is None or self._key is None:
            return None
        answer = self._context.store.claim(self._key)
        if isinstance(answer, Lease):
            self._lease = answer
        elif isinstance(answer, Completed):
            self._completed = answer
        return answer

    @contextmanager
    def kept(self) -> Iterator[None]:
        """Renew the lease (if this job holds one) while the block runs."""
        if self._context is None or self._lease is None:
            yield
            return
        with LeaseKeeper(self._context.store, self._lease) as keeper:
            self._keeper = keeper
            try:
                yield
            finally:
                self._keeper = None

    def check(self) -> None:
        """LeaseLostError if a renewal found the lease lost (stop building early)."""
        if self._keeper is not None:
            self._keeper.check()

    def complete(self, version_dir: Path, *, flavour: str, reason: str | None,
                 source_fingerprint: str | None) -> FleetOrigin | None:
        """Complete the key with the staged version at ``version_dir`` (None without a
        lease: single-pod mode). LeaseLostError when the lease was lost: the work is void."""
        if self._context is None or self._key is None or self._lease is None:
            return None
        self.check()
        lease = self._lease
        record = self._context.store.complete(self._key, lease, version_dir, flavour=flavour,
                                              reason=reason,
                                              source_fingerprint=source_fingerprint)
        self._lease = None  # ended: completed for good
        return FleetOrigin(record.built_by, installed=False, took_over_from=lease.took_over_from)

    def copy_artifact(self, destination: Path) -> ArtifactRecord:
        """Copy the key's completed artifact into ``destination`` (a staging directory);
        DamagedArtifactError when it is damaged, or gone since the claim."""
        assert self._context is not None and self._key is not None, "no store, no artifact"
        assert self._completed is not None, "claim() found no completed artifact"
        record = self._context.store.copy_artifact(self._key, destination)
        if record is None:  # refused by another replica, or its key directory removed
            raise DamagedArtifactError(
                f"the fleet store's artifact of {self._key.describe()} (generation "
                f"{self._completed.generation}) is no longer complete", where=str(self._key.path),
                generation=self._completed.generation,
                fix="nothing to do: the job claims the key again, to build or install it")
        return record

    def reject(self, damaged: DamagedArtifactError) -> None:
        """Refuse the damaged artifact (:meth:`~sidecar.fleet.store.FleetStore.reject`), so
        that the key is claimed again and built under a new lease. When the fleet refused
        the key's artifacts too often to build it again by itself, a DamagedArtifactError
        saying so, with every step of the fix."""
        assert self._context is not None and self._key is not None, "no store, no artifact"
        if self._context.store.reject(self._key, damaged.generation, damaged.what):
            return
        raise DamagedArtifactError(
            f"{damaged.what}; the fleet refused this key's artifacts {MAX_REJECTIONS} times, "
            "so it is not built again by itself", where=damaged.where,
            generation=damaged.generation,
            fix="find why in the replicas' logs and the key's rejected.<generation> files, "
                f"then remove the key's directory {self._key.path} from the fleet store: "
                "every replica then builds or installs it again by itself") from damaged

    def let_go(self) -> None:
        """Release a lease the job did not complete, so another replica may build the key
        at once; a lease already lost, or a store that refuses, only gets a log line
        (the lease then expires by itself)."""
        lease, self._lease = self._lease, None
        if self._context is None or lease is None:
            return
        try:
            self._context.store.release(lease)
        except LeaseLostError:
            pass
        except FleetStoreError as exc:
            _LOG.warning("%s: could not release the fleet lease; it expires in %g s: %s",
                         self._key.describe() if self._key else "?", lease.lease_seconds, exc)
