"""Job metrics: a :class:`~sidecar.jobs.observer.JobObserver` that counts stages and results."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Counter, Histogram

from sidecar.jobs.observer import StageOutcome
from sidecar.publish.published import PublishedModels
from sidecar.state import Flavour, JobState

if TYPE_CHECKING:
    from sidecar.jobs.result import JobResult

_LOG = logging.getLogger("sidecar.metrics")

STAGE_BUCKETS: Final = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""Stage durations run from under a second (tiny models) to an hour (large builds)."""

ENGINE_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""One engine compiles in tens of milliseconds to minutes."""


def conversion_result(result: JobResult) -> str:
    """The ``result`` label: converted, original (published unconverted), failed or skipped."""
    if result.state is JobState.PUBLISHED:
        return "converted" if result.flavour is Flavour.CONVERTED else "original"
    return result.state.value


class JobMetrics:
    """Counts job stages, results, publishes and the engines each published version got.

    Every method returns quickly and never raises (the job's observer contract).
    """

    def __init__(self, registry: CollectorRegistry, published: PublishedModels | None) -> None:
        self._published = published
        self._conversions = Counter(
            "tftrt_sidecar_conversions", "Finished version jobs by result "
            "(converted, original: published unconverted, failed, skipped).",
            ["model", "result"], registry=registry,
        )
        self._stage_seconds = Histogram(
            "tftrt_sidecar_stage_duration_seconds", "Time a job spent in each stage.",
            ["stage", "outcome"], buckets=STAGE_BUCKETS, registry=registry,
        )
        self._stages_running = Counter(
            "tftrt_sidecar_stages_started", "Job stages started.", ["stage"], registry=registry,
        )
        self._publishes = Counter(
            "tftrt_sidecar_publishes", "Versions published into the serving base, by flavour.",
            ["model", "flavour"], registry=registry,
        )
        self._engines_built = Counter(
            "tftrt_sidecar_engines_built", "Engines compiled for published versions "
            "(kept: faster than native and used; dropped ones are counted too).",
            ["model", "kept"], registry=registry,
        )
        self._internal_errors = Counter(
            "tftrt_sidecar_internal_errors", "Bugs met by version jobs (errors nothing raises "
            "on purpose; the log has each traceback), by the stage they broke: a conversion "
            "step published the original instead, any other step ended the job FAILED.",
            ["stage"], registry=registry,
        )
        self._engine_seconds = Histogram(
            "tftrt_sidecar_engine_build_duration_seconds", "Compile time of each engine.",
            buckets=ENGINE_BUCKETS, registry=registry,
        )
        self._fleet_publishes = Counter(
            "tftrt_sidecar_fleet_publishes", "In a fleet: versions published here, by origin "
            "(built: this replica converted it; installed: copied from the fleet store).",
            ["model", "origin"], registry=registry,
        )
        self._takeovers = Counter(
            "tftrt_sidecar_fleet_takeovers", "In a fleet: builds this replica took over "
            "from a replica whose lease expired (it died or stalled mid-build).",
            ["model"], registry=registry,
        )
        self._install_seconds = Histogram(
            "tftrt_sidecar_fleet_install_duration_seconds", "In a fleet: time to install a "
            "version from the store (copy, engines, publish).", buckets=STAGE_BUCKETS,
            registry=registry,
        )

    def stage_started(self, model: str, version: int, stage: JobState) -> None:
        """Count the stage."""
        self._stages_running.labels(stage.value).inc()

    def stage_finished(
        self, model: str, version: int, stage: JobState, seconds: float, outcome: StageOutcome
    ) -> None:
        """Observe the stage's duration."""
        self._stage_seconds.labels(stage.value, outcome.value).observe(max(seconds, 0.0))

    def job_finished(self, result: JobResult) -> None:
        """Count the result; for a published version, its publish and its engines."""
        self._conversions.labels(result.model, conversion_result(result)).inc()
        if result.state is not JobState.PUBLISHED:
            return
        flavour = result.flavour.value if result.flavour else "unknown"
        self._publishes.labels(result.model, flavour).inc()
        self._count_fleet_origin(result)
        if self._published is None:
            return
        try:
            version = self._published.version(result.model, result.version)
        except OSError as exc:
            _LOG.warning("cannot read the engines of %s/%s: %s", result.model, result.version, exc)
            return
        for engine in version.engines if version is not None else ():
            self._engines_built.labels(result.model, "true" if engine.kept else "false").inc()
            self._engine_seconds.observe(engine.compile_seconds)

    def _count_fleet_origin(self, result: JobResult) -> None:
        origin = result.origin
        if origin is None:
            return
        self._fleet_publishes.labels(result.model,
                                     "installed" if origin.installed else "built").inc()
        if origin.took_over_from is not None:
            self._takeovers.labels(result.model).inc()
        if origin.installed:
            self._install_seconds.observe(result.stage_seconds.get(JobState.VERIFYING, 0.0))

    def internal_error(self, model: str, version: int, stage: JobState) -> None:
        """Count the bug by stage."""
        self._internal_errors.labels(stage.value).inc()
