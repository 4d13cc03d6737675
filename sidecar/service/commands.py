"""Work other threads ask of the service loop, which is the serving base's one writer.

The admin API's conversions and rollbacks are queued here and run on the loop's thread
between jobs. So publishing, withdrawal, retention and rollbacks never interleave, and no
lock is needed: a rollback asked for while a job runs waits for that job to end. What is
still queued when the loop stops fails with :class:`~sidecar.admin.errors.NotReadyError`,
which the admin API answers UNAVAILABLE, so the caller retries once the sidecar is back.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from sidecar.admin.backend import ConversionRequest
from sidecar.admin.errors import NotReadyError
from sidecar.config import ModelPolicy
from sidecar.jobs import JobResult
from sidecar.state import JobJournal

T = TypeVar("T")
Convert = Callable[[ConversionRequest], JobResult]
"""The loop's own conversion of a request (``SidecarService`` runs it as a job, with
:func:`run_requested`)."""

RunJob = Callable[[str, int, ModelPolicy], JobResult]
"""Runs the journal job of (model, served version) with a policy."""


def run_requested(request: ConversionRequest, journal: JobJournal, run_job: RunJob
                  ) -> JobResult:
    """Run a conversion the admin API asked for with ``run_job``, once its journal job is
    there: the ended (failed or skipped) job restarted, or the served version the request
    names discovered (a rebuild's next served number included)."""
    if request.restart:
        journal.restart(request.model, request.version, reason=request.reason)
    else:
        journal.discover(request.model, request.version, reason=request.reason or None)
    return run_job(request.model, request.version, request.policy)


@dataclass(frozen=True)
class _Command:
    """One queued piece of work, run with the loop's conversion; and the Future of its
    result."""

    future: Future[Any]
    run: Callable[[Convert], Any]


class LoopCommands:
    """The queue of work for the service loop; any thread may submit, the loop runs it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[_Command] = deque()
        self._stopped = False

    def convert(self, request: ConversionRequest) -> Future[JobResult]:
        """Queue a conversion (the admin API's
        :data:`~sidecar.admin.backend.ConversionSubmitter`)."""
        future: Future[JobResult] = Future()
        self._put(_Command(future, lambda convert: convert(request)))
        return future

    def call(self, work: Callable[[], T]) -> Future[T]:
        """Queue ``work`` (a rollback, say) to run on the loop's thread; its Future has its
        result, or what it raised."""
        future: Future[T] = Future()
        self._put(_Command(future, lambda _: work()))
        return future

    def run_next(self, convert: Convert) -> bool:
        """On the loop's thread: run the oldest command (a conversion with ``convert``),
        completing its Future; True if there was one (a cancelled one counts)."""
        with self._lock:
            if not self._queue:
                return False
            command = self._queue.popleft()
        if not command.future.set_running_or_notify_cancel():
            return True
        try:
            result = command.run(convert)
        except Exception as error:  # the caller's Future carries it; the loop goes on
            command.future.set_exception(error)
        else:
            command.future.set_result(result)
        return True

    def start(self) -> None:
        """The loop runs (again): take commands."""
        with self._lock:
            self._stopped = False

    def stop(self) -> None:
        """The loop has ended: fail what is queued, and what is submitted until
        :meth:`start`."""
        with self._lock:
            self._stopped = True
            left, self._queue = list(self._queue), deque()
        for command in left:
            _refuse(command.future)

    def _put(self, command: _Command) -> None:
        with self._lock:
            if not self._stopped:
                self._queue.append(command)
                return
        _refuse(command.future)


def _refuse(future: Future[Any]) -> None:
    """Fail ``future`` (unless it was cancelled): the loop has stopped."""
    if future.set_running_or_notify_cancel():
        future.set_exception(NotReadyError(
            "the sidecar is stopping, and its loop runs no more commands",
            fix="retry once the sidecar is back"))
