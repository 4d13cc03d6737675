"""The service's part in a fleet: what the fleet gives the service (:class:`FleetFeature`)
and what the loop does with it between jobs (:class:`FleetUpkeep`): apply the fleet's
rollbacks, catch up with what other replicas built, hold back the jobs whose key another
replica holds, and report once this replica has caught up.

:class:`FleetCatchUp` queues the versions other replicas built, to install them.

The incoming watcher discovers every first build (served ``N * 1000``) of an incoming
version by itself; a rebuild (``N * 1000 + k``) that another replica judged due exists
only in the store. So, at start and then every ``interval_seconds``, every completed key
of this replica's TensorFlow version and device slug whose incoming version is present,
that the journal does not know and the fleet did not roll back, is discovered as a job;
its job finds the key complete and installs the artifact (:mod:`sidecar.jobs.job`). A new
replica therefore becomes ready by installing, without converting anything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.base.errors import StorageError
from sidecar.fleet.actions import FleetRollbacks
from sidecar.jobs import FleetContext
from sidecar.state import JobJournal
from sidecar.tfserving import numbering
from sidecar.watch import incoming_version_dir

_LOG = logging.getLogger("sidecar.fleet")


@dataclass(frozen=True)
class FleetFeature:
    """A replica's place in a fleet (``--store``); without one the service runs single-pod."""

    context: FleetContext
    """The fleet's shared store and this replica's key namespace (TensorFlow, device)."""

    rollbacks: FleetRollbacks
    """The versions operators rolled back in the store: never installed here, and moved
    out of this replica's serving base between jobs."""

    caught_up: threading.Event = field(default_factory=threading.Event)
    """Set once, the first time after start-up that this replica had nothing left to
    build or install (the admin API's fleet health service reads it)."""


class FleetCatchUp:
    """Discovers the store's completed keys this replica has no job for."""

    def __init__(
        self, context: FleetContext, journal: JobJournal, incoming_base: Path, *,
        interval_seconds: float, is_rolled_back: Callable[[str, int], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._context = context
        self._journal = journal
        self._incoming_base = incoming_base
        self._interval = interval_seconds
        self._is_rolled_back = is_rolled_back
        self._clock = clock
        self._next = float("-inf")

    def due(self) -> bool:
        """Queue what the fleet completed and this replica lacks, when a look is due;
        True if a job was queued. Raises FleetStoreError when the store refuses."""
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self._interval
        queued = False
        for key in self._context.store.completed_keys(self._context.tensorflow,
                                                      self._context.slug):
            incoming = numbering.incoming_version(key.served)
            if (self._journal.get(key.model, key.served) is not None
                    or self._is_rolled_back(key.model, key.served)
                    or incoming_version_dir(self._incoming_base, key.model, incoming) is None):
                continue
            self._journal.discover(key.model, key.served,
                                   reason="the fleet built it: installing it from the store")
            _LOG.info("%s/%s: the fleet built it; queued to install it from the store",
                      key.model, key.served)
            queued = True
        return queued


class FleetUpkeep:
    """What the service loop does for the fleet between jobs."""

    def __init__(
        self, catch_up: FleetCatchUp, rollbacks: FleetRollbacks, caught_up: threading.Event,
        *, write_model_config: Callable[[], None], clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catch_up = catch_up
        self._rollbacks = rollbacks
        self._caught_up = caught_up
        self._write_model_config = write_model_config
        self._clock = clock
        self._waits: dict[tuple[str, int], float] = {}

    def between_jobs(self) -> bool:
        """Apply the fleet's rollbacks here (rewriting TF Serving's model config after), then
        queue what the fleet built and this replica lacks; True if either changed anything.

        A local move that fails raises (the step's fault handling reports it); a store that
        cannot be listed only skips the catch-up this time.
        """
        applied = bool(self._rollbacks.apply())
        if applied:
            self._write_model_config()
        return applied | self._queue_what_the_fleet_built()

    def hold(self, model: str, version: int, seconds: float) -> None:
        """Keep (model, version)'s job waiting ``seconds`` (another replica holds its key)."""
        self._waits[(model, version)] = self._clock() + seconds

    def waiting(self) -> frozenset[tuple[str, int]]:
        """The jobs held back by :meth:`hold` whose time has not come."""
        now = self._clock()
        self._waits = {job: at for job, at in self._waits.items() if at > now}
        return frozenset(self._waits)

    @property
    def caught_up(self) -> bool:
        """Whether this replica reported :meth:`report_caught_up` already."""
        return self._caught_up.is_set()

    def report_caught_up(self) -> None:
        """This replica has nothing left to build or install: it serves what the fleet
        serves (its pod may take traffic)."""
        self._caught_up.set()

    def _queue_what_the_fleet_built(self) -> bool:
        try:
            return self._catch_up.due()
        except StorageError as exc:  # the store is down: serving goes on, jobs report it
            _LOG.warning("could not look for the fleet's artifacts this time: %s", exc)
            return False
