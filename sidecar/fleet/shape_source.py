"""The fleet's traffic as a shape source: what jobs replay and coverage is judged on.

The counts are this replica's own, live from its shape store (its newest traffic counts at
once, not when its next contribution is written), plus the fresh contributions of the other
replicas in the store (this replica's own file is skipped: it holds the same traffic, older).
Sampled request values stay in each replica's shape store; the fleet shares counts only, so
:meth:`FleetShapeSource.predict_requests` are this replica's samples (a job synthesises
values for the fleet's shape sets it has no sample of).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from sidecar.fleet.episodes import FaultEpisodes
from sidecar.fleet.errors import FleetStoreError
from sidecar.fleet.shapes import FleetShapes, horizon_for, merge_contributions
from sidecar.fleet.store import FleetStore
from sidecar.shapes import (
    Coverage,
    Refusal,
    ShapeSet,
    TopShapeSets,
    coverage_of,
    rank_shape_sets,
)

_LOG = logging.getLogger("sidecar.fleet")

REFRESH_SECONDS: Final = 5.0
"""The store's contributions are read at most this often (a job asks for each signature;
contributions change every ``shape_share_seconds``)."""

_NONE: Final = FleetShapes({}, (), ())


class LocalShapes(Protocol):
    """This replica's recorded shapes; :class:`sidecar.shapes.ShapeStore` is one."""

    def shape_set_counts(self, model: str, signature: str) -> list[tuple[ShapeSet, int]]:
        """Every shape set of (model, signature) in the window with its request count."""
        ...

    def signatures(self) -> list[tuple[str, str]]:
        """Every (model, signature) with traffic in the window, sorted."""
        ...

    def refused_counts(self, model: str | None = None) -> dict[Refusal, int]:
        """Observations refused here, by reason."""
        ...

    def predict_requests(self, model: str, signature: str | None = None) -> list[Any]:
        """Sampled ``PredictRequest`` protos of ``model`` (one signature), oldest first."""
        ...


class FleetShapeSource:
    """The fleet's shape counts: ``local`` (live) plus the other replicas' contributions to
    ``store`` written within :func:`~sidecar.fleet.shapes.horizon_for` ``share_seconds``.

    Answers as :class:`sidecar.jobs.replay.ShapeSource` and as the shape counts
    :class:`sidecar.service.rebuilds.CoverageRebuilds` judges coverage on. The store is read at
    most every ``refresh_seconds`` (``monotonic``); a read the store refuses leaves the
    local counts alone until the next read works (logged once per episode): a build never
    fails because the store is down. Thread-safe.
    """

    def __init__(self, store: FleetStore, local: LocalShapes, share_seconds: float, *,
                 refresh_seconds: float = REFRESH_SECONDS,
                 wall_clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._local = local
        self._horizon = horizon_for(share_seconds)
        self._refresh = refresh_seconds
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._episodes = FaultEpisodes(_LOG, "reading the fleet's shape counts")
        self._lock = threading.Lock()
        self._others = _NONE
        self._read_at: float | None = None

    @property
    def contributors(self) -> int:
        """How many replicas' counts are merged, this one included (a gauge for metrics;
        reading it reads the store when the cached merge is ``refresh_seconds`` old)."""
        return len(self._fresh_others().contributors) + 1

    def shape_set_counts(self, model: str, signature: str) -> list[tuple[ShapeSet, int]]:
        """Every shape set of (model, signature) the fleet saw, with its request count, in
        no particular order (as a shape store answers)."""
        totals = dict(self._fresh_others().counts.get((model, signature), {}))
        for shape_set, count in self._local.shape_set_counts(model, signature):
            totals[shape_set] = totals.get(shape_set, 0) + count
        return list(totals.items())

    def top_shape_sets(self, model: str, signature: str, limit: int) -> TopShapeSets:
        """The at most ``limit`` shape sets that carried the most fleet traffic."""
        return rank_shape_sets(self.shape_set_counts(model, signature), limit)

    def predict_requests(self, model: str, signature: str | None = None) -> list[Any]:
        """This replica's sampled ``PredictRequest`` protos of ``model``, oldest first."""
        return self._local.predict_requests(model, signature)

    def coverage(self, model: str, signature: str, prebuilt: Iterable[ShapeSet]) -> Coverage:
        """The share of the fleet's (model, signature) traffic ``prebuilt`` shape sets match
        (what coverage-triggered rebuilds judge, for the admin API and the metrics)."""
        return coverage_of(self.shape_set_counts(model, signature), prebuilt)

    def signatures(self) -> list[tuple[str, str]]:
        """Every (model, signature) with traffic anywhere in the fleet, sorted."""
        return sorted(set(self._local.signatures()) | set(self._fresh_others().counts))

    def refused_counts(self, model: str | None = None) -> dict[Refusal, int]:
        """Observations this replica refused (refusals are not shared), by reason."""
        return self._local.refused_counts(model)

    def _fresh_others(self) -> FleetShapes:
        """The other replicas' merged contributions, read again once ``refresh_seconds``
        passed since the last read (a failed one included: a down store is not hammered)."""
        with self._lock:
            now = self._monotonic()
            if self._read_at is not None and now - self._read_at < self._refresh:
                return self._others
            self._read_at = now
            try:
                files = self._store.shape_contributions()
            except FleetStoreError as exc:
                self._episodes.failed(exc, "builds and coverage use this replica's counts only")
                self._others = _NONE
                return _NONE
            self._episodes.succeeded()
            files.pop(self._store.replica, None)
            self._others = merge_contributions(files, now=self._wall_clock(),
                                               horizon_seconds=self._horizon)
            return self._others
