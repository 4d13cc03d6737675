"""TEST-ONLY stand-in for the service's job worker: runs the real version job for each
conversion the admin API submits, and each rollback, one at a time, on its own thread.

The service runs them on its loop; this one runs a conversion as the loop does
(:func:`sidecar.service.commands.run_requested`: restart the journal job of a failed or
skipped version, or discover the served version the request names, then run
``run_version_job`` with the request's policy), with a gate tests can close to hold a job
at its start.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import TypeVar

from sidecar.admin.backend import ConversionRequest
from sidecar.jobs import JobDependencies, JobObserver, JobResult, run_version_job
from sidecar.service.commands import run_requested
from tests.support.command_loop import CommandLoop

T = TypeVar("T")


class ServiceJobRunner:
    """Runs submitted conversions in order; ``gate`` must be set for a job to start running."""

    def __init__(self, deps: JobDependencies) -> None:
        self._deps = deps
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self._loop = CommandLoop(self._convert)

    def with_observer(self, observer: JobObserver) -> None:
        """Tell ``observer`` about the jobs run from now on."""
        self._deps = replace(self._deps, observer=observer)

    def submit(self, request: ConversionRequest) -> Future[JobResult]:
        """Queue a conversion (a :data:`~sidecar.admin.ConversionSubmitter`)."""
        return self._loop.commands.convert(request)

    def call(self, work: Callable[[], T]) -> Future[T]:
        """Queue other work, a rollback (a :class:`~sidecar.admin.backend.LoopCall`)."""
        return self._loop.commands.call(work)

    def close(self) -> None:
        """Finish the queue and end the thread."""
        self.gate.set()
        self._loop.close()

    def _convert(self, request: ConversionRequest) -> JobResult:
        self.started.set()
        self.gate.wait()
        return run_requested(request, self._deps.journal,
                             functools.partial(run_version_job, self._deps))
