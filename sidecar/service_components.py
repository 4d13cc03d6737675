"""The parts of the service a caller passes in: background servers, job plumbing,
and the hooks the admin API uses (requested jobs, pauses, policy overrides, the
serving lock)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from sidecar.config import ModelPolicy
from sidecar.faults import FaultBoard
from sidecar.jobs import (
    ConverterFactory,
    JobObserver,
    JobResult,
    JobSettings,
    LoggingJobObserver,
    ShapeSource,
    default_converter_factory,
)
from sidecar.publish import Checkpoint
from sidecar.rebuilds import CoverageRebuilds


def _no_checkpoint(_: str) -> None:
    return None


class BackgroundComponent(Protocol):
    """A server that runs beside the pipeline: the tap, the admin API, the metrics endpoint."""

    def start(self) -> None:
        """Start serving (return once it is up)."""
        ...

    def stop(self) -> None:
        """Stop serving and release its resources."""
        ...


@dataclass(frozen=True)
class RequestedJob:
    """A conversion asked for from outside the watch loop (the admin API)."""

    model: str
    version: int
    policy: ModelPolicy
    """The policy to run it with (overrides already applied)."""
    restart: bool
    """Restart a failed or skipped journal job before running it."""
    reason: str
    """Why it runs, recorded in the journal."""
    future: Future[JobResult]
    """Completed with the job's result; a cancelled one is not run."""


def _never_paused(model: str) -> bool:
    return False


def _as_configured(model: str, configured: ModelPolicy) -> ModelPolicy:
    return configured


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class ServiceComponents:
    """The optional and replaceable parts of the service, passed in by the caller."""

    shape_source: ShapeSource | None = None
    """Recorded request shapes (the tap's shape store); None until a tap is plugged in."""

    observer: JobObserver = field(default_factory=LoggingJobObserver)
    """Told about every job stage and result (logs; metrics plug in here)."""

    background: tuple[BackgroundComponent, ...] = ()
    """Servers started before the loop and stopped after it."""

    converter_factory: ConverterFactory = default_converter_factory
    """Makes the converter for a model version."""

    job_settings: JobSettings = field(default_factory=JobSettings)
    """Signature, tags and verification tolerances of every job."""

    checkpoint: Checkpoint = _no_checkpoint
    """Called at every named job and publish step (crash tests pause here)."""

    wall_clock: Callable[[], float] = time.time
    """Seconds since the epoch, for the journal."""

    monotonic: Callable[[], float] = time.monotonic
    """Monotonic seconds, for settling and durations."""

    requests: queue.SimpleQueue[RequestedJob] = field(default_factory=queue.SimpleQueue)
    """Conversions asked for from outside (the admin API); run before watched jobs."""

    is_paused: Callable[[str], bool] = _never_paused
    """Whether a model's new versions wait (admin pause)."""

    policy_for: Callable[[str, ModelPolicy], ModelPolicy] = _as_configured
    """The policy a model runs with, given its configured one (admin overrides)."""

    serving_lock: AbstractContextManager[object] = field(default_factory=threading.Lock)
    """Held while the service changes the serving base (rollbacks take it too)."""

    rebuilds: CoverageRebuilds | None = None
    """Queues rebuilds when traffic moves to shapes the served version was not built for."""

    on_started: Callable[[], None] = _nothing
    """Called once start-up recovery is done (the admin API reports ready)."""

    faults: FaultBoard = field(default_factory=FaultBoard)
    """Storage faults the service is riding out (admin health and metrics read them)."""
