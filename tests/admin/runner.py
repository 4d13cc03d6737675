"""TEST-ONLY stand-in for the service's job worker: runs the real version job for each
conversion the admin API submits, one at a time, on its own thread.

The service supplies the real submitter; this one does what it must do (restart the
journal job of a failed or skipped version, or discover the served version the request
names, a rebuild's next served number included; run ``run_version_job`` with the
request's policy; complete the Future) with a gate tests can close to hold a job at its
start.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any

from sidecar.admin.backend import ConversionRequest
from sidecar.jobs import JobDependencies, JobObserver, run_version_job


class ServiceJobRunner:
    """Runs submitted conversions in order; ``gate`` must be set for a job to start running."""

    def __init__(self, deps: JobDependencies) -> None:
        self._deps = deps
        self._queue: queue.Queue[tuple[ConversionRequest, Future[Any]] | None] = queue.Queue()
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self._thread = threading.Thread(target=self._work, name="test-job-runner", daemon=True)
        self._thread.start()

    def with_observer(self, observer: JobObserver) -> None:
        """Tell ``observer`` about the jobs run from now on."""
        from dataclasses import replace

        self._deps = replace(self._deps, observer=observer)

    def submit(self, request: ConversionRequest) -> Future[Any]:
        """Queue a conversion (a :data:`~sidecar.admin.ConversionSubmitter`)."""
        future: Future[Any] = Future()
        self._queue.put((request, future))
        return future

    def close(self) -> None:
        """Finish the queue and end the thread."""
        self.gate.set()
        self._queue.put(None)
        self._thread.join(120)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            request, future = item
            if not future.set_running_or_notify_cancel():
                continue
            self.started.set()
            self.gate.wait()
            try:
                journal = self._deps.journal
                if request.restart:
                    journal.restart(request.model, request.version, reason=request.reason)
                else:
                    journal.discover(request.model, request.version,
                                     reason=request.reason or None)
                result = run_version_job(self._deps, request.model, request.version,
                                         request.policy)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
