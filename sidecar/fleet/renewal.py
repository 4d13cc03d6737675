"""Renewing a lease while the work under it runs."""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Protocol

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
        self._stop = threading.Event()
        self._lost: LeaseLostError | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{lease.generation}", daemon=True)

    @property
    def lost(self) -> bool:
        """Whether a renewal found the lease ended."""
        return self._lost is not None

    def check(self) -> None:
        """Raise the LeaseLostError a renewal found, if one did."""
        if self._lost is not None:
            raise self._lost

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = self._lease.lease_seconds / RENEWALS_PER_LEASE
        failing = False
        while not self._stop.wait(interval):
            try:
                self._renewer.renew(self._lease)
            except LeaseLostError as exc:
                self._lost = exc
                return
            except FleetStoreError as exc:
                if not failing:  # once per fault: a store gone for hours is one line
                    _LOG.warning("could not renew a lease, retrying every %.1f s: %s",
                                 interval, exc)
                failing = True
            else:
                if failing:
                    _LOG.info("renewing a lease works again")
                failing = False
