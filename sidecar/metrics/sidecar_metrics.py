"""All the sidecar's metrics on one registry, and the observers that feed them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Info

from sidecar.base.faults import FaultBoard
from sidecar.metrics.build_info import BuildInfo
from sidecar.metrics.collectors import (
    CoverageCollector,
    EngineCacheCollector,
    IncomingRefusedCollector,
    PublishedEnginesCollector,
    StorageFaultCollector,
    VersionStateCollector,
)
from sidecar.metrics.fleet_collector import (
    FleetShapesCollector,
    FleetStoreCollector,
    MergedShapes,
    SharedShapes,
    StoreFindings,
)
from sidecar.metrics.job_metrics import JobMetrics
from sidecar.metrics.tap_metrics import TapMetrics
from sidecar.publish.published import PublishedModels
from sidecar.shapes import RecordedShapes
from sidecar.state import JobJournal


@dataclass(frozen=True)
class ScrapeSources:
    """What scrape-time gauges read; each is optional (its metrics are left out without it)."""

    journal: JobJournal | None = None
    """Versions by state."""
    published: PublishedModels | None = None
    """Engines per published version, prebuilt shapes (coverage, tap prebuilt label)."""
    engine_cache_dir: Path | None = None
    """Engine cache bytes."""
    shape_store: RecordedShapes | None = None
    """Shape coverage (needs ``published`` too)."""
    faults: FaultBoard | None = None
    """Storage faults in progress."""
    incoming_base: Path | None = None
    """Incoming directories refused for their name."""
    fleet_shapes: tuple[MergedShapes, SharedShapes] | None = None
    """In a fleet: the merged shape counts (contributors) and this replica's contributions
    (refused writes)."""
    fleet_store: StoreFindings | None = None
    """In a fleet: the store, for the damage this replica found in it (refused artifacts,
    unreadable outcome files)."""


class SidecarMetrics:
    """Registers every ``tftrt_sidecar_*`` metric on ``registry`` (never the global default).

    Plug in with :attr:`job_observer` (the service's job observer), :attr:`tap_observer`
    (``serve_tap(..., observer=...)``) and :meth:`rolled_back` (the admin backend's
    rollback observer).
    """

    def __init__(
        self, registry: CollectorRegistry, build: BuildInfo, sources: ScrapeSources
    ) -> None:
        self.registry = registry
        """The registry every metric is on."""
        info = Info("tftrt_sidecar_build", "The running sidecar.", registry=registry)
        info.info({"version": build.version, "tensorflow_version": build.tensorflow_version,
                   "backend": build.backend})
        self.job_observer = JobMetrics(registry, sources.published)
        """A JobObserver counting stages, results, publishes and engines."""
        self.tap_observer = TapMetrics(registry, sources.published)
        """A TapObserver counting calls, latency, requests and dropped records."""
        self._rollbacks = Counter(
            "tftrt_sidecar_rollbacks", "Versions rolled back through the admin API.",
            ["model"], registry=registry,
        )
        if sources.journal is not None:
            registry.register(VersionStateCollector(sources.journal))
        if sources.published is not None:
            registry.register(PublishedEnginesCollector(sources.published))
            if sources.shape_store is not None:
                registry.register(CoverageCollector(sources.shape_store, sources.published))
        if sources.engine_cache_dir is not None:
            registry.register(EngineCacheCollector(sources.engine_cache_dir))
        if sources.faults is not None:
            registry.register(StorageFaultCollector(sources.faults))
        if sources.incoming_base is not None:
            registry.register(IncomingRefusedCollector(sources.incoming_base))
        if sources.fleet_shapes is not None:
            registry.register(FleetShapesCollector(*sources.fleet_shapes))
        if sources.fleet_store is not None:
            registry.register(FleetStoreCollector(sources.fleet_store))

    def rolled_back(self, model: str, version: int, now_serving: int) -> None:
        """Count a rollback (a :class:`~sidecar.admin.backend.RollbackObserver`)."""
        self._rollbacks.labels(model).inc()
