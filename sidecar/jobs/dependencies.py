"""What a version job is given: everything it uses is passed in, so tests build the real
job on temporary directories."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.config.job import JobSettings
from sidecar.jobs.conversion import ConverterFactory, default_converter_factory
from sidecar.jobs.fleet_work import FleetContext
from sidecar.jobs.observer import JobObserver, LoggingJobObserver
from sidecar.jobs.replay import ShapeSource
from sidecar.jobs.retry import RetryPolicy
from sidecar.publish import Checkpoint, VersionPublisher, no_checkpoint
from sidecar.state import JobJournal


@dataclass(frozen=True)
class JobDependencies:
    """Everything a job uses, passed in (tests build them on temporary directories)."""

    journal: JobJournal
    """Where states, flavours and timings are recorded."""

    publisher: VersionPublisher
    """Stages and renames versions into the serving base."""

    incoming_base: Path
    """Where raw versions are, as ``<model>/<version>/``."""

    engine_cache_dir: Path
    """Engines are installed here, namespaced by TF version and device."""

    settings: JobSettings = field(default_factory=JobSettings)
    """Signature, tags and verification tolerances."""

    converter_factory: ConverterFactory = default_converter_factory
    """Makes the converter for a model (the real one unless a test says otherwise)."""

    shape_source: ShapeSource | None = None
    """Recorded request shapes (the tap's shape store), when there is one."""

    observer: JobObserver = field(default_factory=LoggingJobObserver)
    """Told about every stage and result."""

    checkpoint: Checkpoint = no_checkpoint
    """Called with each step's name (``job-converting`` ... ``job-published``)."""

    clock: Callable[[], float] = time.monotonic
    """Monotonic seconds, for stage durations."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """How long a job that failed on a storage fault waits before it runs again."""

    fleet: FleetContext | None = None
    """The fleet's store and this replica's key namespace; None: single-pod mode."""

    is_rolled_back: Callable[[str, int], bool] = lambda model, version: False
    """Whether the fleet rolled (model, version) back: its job is then SKIPPED."""
