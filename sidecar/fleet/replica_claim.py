"""This replica's claim on its id in the fleet store: one live process per ``--replica-id``.

Two live replicas with one id would overwrite each other's ``shapes/<replica>.json`` (the
fleet's counts would miss half the traffic) and share one note per rollback. So a replica
claims its id at start with a lease on ``replicas/<replica>/`` (the protocol of
:mod:`sidecar.fleet.lease`: ``lease.<g>`` and ``outcome.<g>`` as for a key), renews it
while it runs (:class:`~sidecar.fleet.renewal.LeaseKeeper`) and releases it when it stops.

A replica that finds its id's lease held watches the holder's renewal counter: a counter
that moves is a live duplicate, refused at start with one line; one that stands still for
the holder's lease is a process that died (SIGKILL, a lost node), whose lease is then taken
over, so a restarted pod gets its id back one lease after its predecessor stopped, or at
once when that one released it on shutdown.

The renewals are the replica's look at the store while it runs, whatever else it does:
each checks the store's marker first (:meth:`~sidecar.fleet.store_root.StoreRoot.check`),
and reports what it finds on the board's ``store`` area (admin health
``tftrt.sidecar.Store``, ``tftrt_sidecar_storage_fault{area="store"}``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Final

from sidecar.base.faults import FaultArea, FaultBoard
from sidecar.fleet import records
from sidecar.fleet.errors import (
    FleetArgumentError,
    FleetStoreError,
    LeaseLostError,
    StoreFormatError,
)
from sidecar.fleet.lease import LEASE_PREFIX, Completed, Lease, LeaseBook, Outcome, directory_lease
from sidecar.fleet.renewal import LeaseKeeper
from sidecar.fleet.store_root import StoreRoot

REPLICAS_DIR: Final = "replicas"
"""``replicas/<replica>/``: the leases on each replica id."""

_POLLS_PER_LEASE: Final = 10
"""How often per lease a starting replica looks at the holder's renewal counter."""

_LOG = logging.getLogger("sidecar.fleet")


class ReplicaClaim:
    """This replica's lease on its id in the store at ``root``: a background component
    (claimed by :meth:`start`, renewed on a thread, released by :meth:`stop`).

    ``book`` is the replica's lease book (its id and lease duration); ``faults`` gets the
    store's faults the renewals find.
    """

    def __init__(self, root: StoreRoot, book: LeaseBook, faults: FaultBoard) -> None:
        self._root = root
        self._book = book
        self._faults = faults
        self._keeper: LeaseKeeper | None = None
        self._lease: Lease | None = None

    @property
    def directory(self) -> Path:
        """Where the id's leases are: ``<store>/replicas/<replica>/``."""
        return self._root.path / REPLICAS_DIR / self._book.replica

    @property
    def lease(self) -> Lease | None:
        """The lease this replica holds on its id (None before :meth:`start`)."""
        return self._lease

    def start(self) -> None:
        """Claim the id, waiting out a dead predecessor's lease; FleetArgumentError (one
        line: the id, the holder's lease, the fix) when a live replica holds it."""
        self._lease = self._claim()
        self._keeper = LeaseKeeper(self, self._lease)
        self._keeper.__enter__()
        _LOG.info("replica id %r claimed in the fleet store (generation %d)",
                  self._book.replica, self._lease.generation)

    def stop(self) -> None:
        """Stop renewing and release the id, so a successor with it starts at once."""
        if self._keeper is None or self._lease is None:
            return
        self._keeper.__exit__(None, None, None)
        if self._keeper.lost:
            return  # someone else holds it now: nothing of it is this replica's to end
        try:
            self._book.seal(self._lease, Outcome.RELEASED)
        except (FleetStoreError, LeaseLostError) as exc:
            # Only costs a successor one lease's wait.
            _LOG.warning("could not release replica id %r in the fleet store: %s",
                         self._book.replica, exc)

    def renew(self, lease: Lease) -> None:
        """Renew ``lease`` after checking the store's marker (the keeper's
        :class:`~sidecar.fleet.renewal.Renewer`); what it finds goes on the fault board."""
        try:
            self._renew(lease)
        except (FleetStoreError, LeaseLostError) as exc:
            self._faults.report(FaultArea.STORE, str(exc))
            raise
        self._faults.clear(FaultArea.STORE)

    def _renew(self, lease: Lease) -> None:
        self._root.check()
        if not lease.directory.is_dir():
            # The store came back without it (a fresh store, created by a restarted
            # replica, or restored from an older backup): the lease is laid down again.
            self._root.make_directory(lease.directory)
        holder = records.read(directory_lease(lease))
        if holder is not None and holder.get("token") != lease.token:
            raise self._taken(lease)
        try:
            self._book.renew(lease)
        except LeaseLostError as exc:
            raise self._taken(lease) from exc

    def _claim(self) -> Lease:
        directory = self.directory
        self._root.make_directory(directory)
        first: tuple[object, ...] | None = None
        while True:
            answer = self._book.claim(directory)
            if isinstance(answer, Lease):
                return answer
            if isinstance(answer, Completed):
                raise StoreFormatError(
                    f"{directory} holds a completion, which no replica id's lease ever has",
                    where=str(directory),
                    fix="remove that directory (no replica runs with this id) and start again")
            holder = records.read(directory / f"{LEASE_PREFIX}{answer.generation}") or {}
            seen = (answer.generation, holder.get("token"), holder.get("renewal"))
            if first is None:
                first = seen
                _LOG.info("replica id %r is held in the fleet store (generation %d): waiting "
                          "up to %.1f s for a previous process's lease to expire",
                          self._book.replica, answer.generation, answer.retry_after)
            elif seen != first:
                raise _in_use(self._book.replica, str(directory), holder, answer.retry_after)
            time.sleep(min(answer.retry_after, self._book.lease_seconds / _POLLS_PER_LEASE))

    def _taken(self, lease: Lease) -> LeaseLostError:
        return LeaseLostError(
            f"replica id {self._book.replica!r} was claimed by another process while this one "
            "ran (its renewals stopped for longer than its lease, or a second replica runs "
            "with this id)", where=str(lease.directory),
            fix="give each pod its own --replica-id, then restart this replica")


def _in_use(replica: str, directory: str, holder: dict[str, object],
            expires_in: float) -> FleetArgumentError:
    return FleetArgumentError(
        f"replica id {replica!r} is in use: a live replica renewed its claim while this one "
        f"waited (its lease of {holder.get('lease_seconds', '?')} s expires in "
        f"{expires_in:.1f} s if it stops renewing)", where=directory,
        fix="give each pod its own --replica-id, e.g. its pod name through the downward API "
            "(TFTRT_SIDECAR_REPLICA_ID from metadata.name, as k8s/base/deployment.yaml does)")
