"""Renewing a lease while the work under it runs."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Protocol

from sidecar.base.ticker import Ticker
from sidecar.fleet.errors import FleetStoreError, LeaseLostError
from sidecar.fleet.lease import Lease

_LOG = logging.getLogger("sidecar.fleet")

RENEWALS_PER_LEASE = 3
"""Renewals per lease duration: two may fail (a slow volume) before others take over."""


class Renewer(Protocol):
    """What renews a lease: a :class:`~sidecar.fleet.store.FleetStore` or a
    :class:`~sidecar.fleet.lease.LeaseBook`."""

    def renew(self, lease: Lease) -> None:
        """Renew ``lease``; LeaseLostError once it ended."""
        ...


class LeaseKeeper:
    """Renews ``lease`` through ``renewer`` every ``lease_seconds / 3`` on a thread while the
    block runs.

    Renewing is only what keeps others from taking over; it is not what makes completing
    safe (:meth:`sidecar.fleet.lease.LeaseBook.seal` is). A renewal that finds the lease
    ended stops the thread and sets :attr:`lost`, so the work can stop early
    (:meth:`check`); a renewal the volume refuses is tried again at the next tick (logged
    when the refusals start and when they end).
    """

    def __init__(self, renewer: Renewer, lease: Lease) -> None:
        self._renewer = renewer
        self._lease = lease
        self._lost: LeaseLostError | None = None
        self._failing = False
        self._ticker = Ticker(f"lease-{lease.generation}",
                              lease.lease_seconds / RENEWALS_PER_LEASE, self._renew)

    @property
    def lost(self) -> bool:
        """Whether a renewal found the lease ended."""
        return self._lost is not None

    def check(self) -> None:
        """Raise the LeaseLostError a renewal found, if one did."""
        if self._lost is not None:
            raise self._lost

    def __enter__(self) -> LeaseKeeper:
        self._ticker.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._ticker.stop()

    def _renew(self) -> None:
        """Renew once; a lease found ended stops the renewals."""
        try:
            self._renewer.renew(self._lease)
        except LeaseLostError as exc:
            self._lost = exc
            self._ticker.stop()
        except FleetStoreError as exc:
            if not self._failing:  # once per fault: a store gone for hours is one line
                _LOG.warning("could not renew a lease, retrying every %.1f s: %s",
                             self._lease.lease_seconds / RENEWALS_PER_LEASE, exc)
            self._failing = True
        else:
            if self._failing:
                _LOG.info("renewing a lease works again")
            self._failing = False
