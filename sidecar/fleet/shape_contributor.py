"""This replica's part of the fleet-wide shapes: its recorded shape counts, written into the
store every ``shape_share_seconds`` (:mod:`sidecar.fleet.shapes` says what is written and how
builders merge it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sidecar.base.ticker import Ticker
from sidecar.fleet.episodes import FaultEpisodes
from sidecar.fleet.shapes import CountSource, encode_contribution, recorded_counts
from sidecar.fleet.store import FleetStore

_LOG = logging.getLogger("sidecar.fleet")


class ShapeContributor:
    """Writes ``shapes``' counts as this replica's contribution to ``store`` every
    ``interval_seconds`` on a thread, once at :meth:`start` and once more at :meth:`stop`
    (so a replica that leaves on purpose leaves its newest counts). A background component.

    A write that fails (the volume is full, read-only or gone; the local counts cannot be
    read) is counted in :attr:`failed_writes`, logged once per episode and tried again at
    the next tick: sharing shapes never stops the replica, it only lets its counts age out.
    """

    def __init__(self, store: FleetStore, shapes: CountSource, interval_seconds: float, *,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._shapes = shapes
        self._interval = interval_seconds
        self._wall_clock = wall_clock
        self._ticker = Ticker("shape-contributor", interval_seconds, self.contribute)
        self._episodes = FaultEpisodes(_LOG, "writing this replica's shape counts into the "
                                             "fleet store")
        self._lock = threading.Lock()
        self._failed_writes = 0
        self._last_written_at: float | None = None

    @property
    def failed_writes(self) -> int:
        """How many writes failed since the replica started (a counter for metrics)."""
        with self._lock:
            return self._failed_writes

    @property
    def last_written_at(self) -> float | None:
        """Wall-clock seconds the last successful write was stamped with; None before one."""
        with self._lock:
            return self._last_written_at

    def start(self) -> None:
        """Write once, then every interval on a thread of its own."""
        self.contribute()
        self._ticker.start()

    def stop(self) -> None:
        """Stop the thread and write a last time (before the shape store closes)."""
        self._ticker.stop()
        self.contribute()

    def contribute(self) -> bool:
        """Write the counts now (what each tick does); whether the store took them."""
        written_at = self._wall_clock()
        try:
            data = encode_contribution(self._store.replica, written_at,
                                       recorded_counts(self._shapes))
            self._store.contribute_shapes(data)
        # Anything, not only the store's FleetStoreError: the local shape store can refuse
        # a read too, and an exception must not end the thread (sharing would stop for good).
        except Exception as exc:
            with self._lock:
                self._failed_writes += 1
            self._episodes.failed(exc, f"retried every {self._interval:g} s; this replica's "
                                       "counts age out of the fleet's")
            return False
        with self._lock:
            self._last_written_at = written_at
        self._episodes.succeeded()
        return True
