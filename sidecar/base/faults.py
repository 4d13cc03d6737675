"""Storage faults the running service rides out, for admin health, metrics and logs.

The service keeps serving through a fault in the directories it reads and writes (the
incoming base, the state directory, the serving base, the fleet store): it reports the
fault here when it starts, keeps it while it lasts and clears it when the storage works
again. Admin health (``tftrt.sidecar.Incoming`` ...) and ``tftrt_sidecar_storage_fault``
read the board; it logs each fault once when it starts or changes, and once when it passes.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_LOG = logging.getLogger("sidecar.faults")


class FaultArea(enum.Enum):
    """Which storage a fault is in."""

    INCOMING = "incoming"
    """The incoming base: missing, unreadable, or emptied under served models."""

    STATE = "state"
    """The state directory: the job journal or the shape store refuses writes."""

    SERVING = "serving"
    """The serving base, the engine cache or TF Serving's model config file."""

    STORE = "store"
    """The fleet store (``--store``): refusing writes, or its marker gone (deleted,
    unmounted); reported by the replica's claim renewals (:mod:`sidecar.fleet.replica_claim`)."""

    @property
    def health_service(self) -> str:
        """The admin API's health service name for this area."""
        return f"tftrt.sidecar.{self.value.capitalize()}"


@dataclass(frozen=True)
class Fault:
    """One fault in progress."""

    area: FaultArea
    """Where it is."""

    message: str
    """What is wrong and what to do (the latest report)."""

    since: float
    """When it started (monotonic seconds)."""


class FaultBoard:
    """The faults in progress, one per area; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._faults: dict[FaultArea, Fault] = {}
        self._started: dict[FaultArea, int] = dict.fromkeys(FaultArea, 0)

    def report(self, area: FaultArea, message: str) -> None:
        """``area`` is faulty for the reason in ``message`` (logged when new or changed)."""
        with self._lock:
            current = self._faults.get(area)
            if current is not None and current.message == message:
                return
            since = self._clock() if current is None else current.since
            self._faults[area] = Fault(area, message, since)
            if current is None:
                self._started[area] += 1
        _LOG.error("storage fault (%s): %s", area.value, message)

    def clear(self, area: FaultArea) -> None:
        """``area`` works again (logged if it was faulty)."""
        with self._lock:
            ended = self._faults.pop(area, None)
        if ended is not None:
            _LOG.warning("storage fault (%s) passed after %.1f s", area.value,
                         self._clock() - ended.since)

    def healthy(self, area: FaultArea) -> bool:
        """Whether ``area`` has no fault in progress."""
        with self._lock:
            return area not in self._faults

    def current(self) -> dict[FaultArea, Fault]:
        """The faults in progress."""
        with self._lock:
            return dict(self._faults)

    def started(self, area: FaultArea) -> int:
        """How many faults ``area`` has had since the service started (a fault shorter
        than a scrape interval still counts)."""
        with self._lock:
            return self._started[area]
