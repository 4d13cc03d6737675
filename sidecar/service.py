"""The long-running sidecar: watch incoming, run one job at a time, keep serving tidy.

One thread does everything in turn: rescan the incoming base, act on what
changed, run the next job, then apply retention and rewrite TF Serving's model
config. Jobs run one at a time (one build per device), and the serving base
has a single writer, so publishing, withdrawing and retention never race.
A vanished version is noticed between jobs; a job notices its own source
vanishing at its stage boundaries.

Start-up order (each step assumes the previous one): delete stale staging
directories and config temp files, settle interrupted jobs from the journal,
withdraw published versions whose source left incoming while the sidecar was
down, apply retention, write the model config.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from sidecar.config import ModelPolicy, Settings
from sidecar.errors import OnlyServableVersionError, SidecarError
from sidecar.jobs import (
    JobDependencies,
    JobQueue,
    JobResult,
    run_version_job,
)
from sidecar.publish import (
    ModelConfigWriter,
    VersionPublisher,
    apply_retention,
    numbering,
    withdraw_version,
)
from sidecar.publish.numbering import VersionNumberError
from sidecar.service_components import (
    BackgroundComponent,
    ServiceComponents,
)
from sidecar.shapes import ShapeStoreError
from sidecar.state import JobJournal, JobState, RecoveryReport, recover_interrupted_jobs
from sidecar.watch import IncomingWatcher, InotifyWakeup, WatchEvent, WatchEventKind

_LOG = logging.getLogger("sidecar.service")


@dataclass(frozen=True)
class StartReport:
    """What start-up found and did."""

    leftovers_removed: tuple[Path, ...]
    """Stale staging directories and config temp files deleted."""

    recovery: RecoveryReport
    """Interrupted jobs completed, restarted or skipped."""

    withdrawn: tuple[tuple[str, int], ...]
    """Published versions withdrawn because their source left incoming."""


@dataclass
class RunSummary:
    """Everything the service has done so far (each :meth:`SidecarService.run` adds to it)."""

    start: StartReport | None = None
    """The start-up report (None if start-up had already run)."""

    results: list[JobResult] = field(default_factory=list)
    """Each job's result, in the order they ran."""

    withdrawn: list[tuple[str, int]] = field(default_factory=list)
    """Versions withdrawn from serving because they vanished from incoming."""

    retired: list[tuple[str, int]] = field(default_factory=list)
    """Versions removed by retention."""

    @property
    def failed(self) -> list[JobResult]:
        """The jobs that ended FAILED."""
        return [r for r in self.results if r.state is JobState.FAILED]


class SidecarService:
    """Watches the incoming base and publishes each ready version; use as a context manager."""

    def __init__(self, settings: Settings, components: ServiceComponents | None = None) -> None:
        self._settings = settings
        self._components = components or ServiceComponents()
        parts = self._components
        self._journal = JobJournal.open(settings.state_dir, clock=parts.wall_clock)
        self._publisher = VersionPublisher(settings.serving_base, checkpoint=parts.checkpoint)
        self._config_writer = ModelConfigWriter(settings.model_config_file, settings.serving_base)
        self._watcher = IncomingWatcher(
            settings.incoming_base, settle_seconds=settings.settle_seconds,
            marker_file=settings.marker_file, clock=parts.monotonic,
        )
        self._queue = JobQueue(self._journal)
        self._deps = JobDependencies(
            journal=self._journal,
            publisher=self._publisher,
            incoming_base=settings.incoming_base,
            engine_cache_dir=settings.engine_cache_dir,
            settings=parts.job_settings,
            converter_factory=parts.converter_factory,
            shape_source=parts.shape_source,
            observer=parts.observer,
            checkpoint=parts.checkpoint,
            clock=parts.monotonic,
        )
        self._summary = RunSummary()
        self._started = False

    @property
    def journal(self) -> JobJournal:
        """The job journal (read it for states, reasons and timings)."""
        return self._journal

    @property
    def publisher(self) -> VersionPublisher:
        """The serving base's publisher."""
        return self._publisher

    def __enter__(self) -> SidecarService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the journal."""
        self._journal.close()

    def start(self) -> StartReport:
        """Recover from whatever a previous process left, then write the model config."""
        self._settings.serving_base.mkdir(parents=True, exist_ok=True)
        removed = self._publisher.clean_leftovers() + self._config_writer.clean_leftovers()
        recovery = recover_interrupted_jobs(
            self._journal, is_in_serving=self._publisher.is_published
        )
        withdrawn: list[tuple[str, int]] = []
        # An unmounted incoming volume must not look like every version vanished.
        if self._settings.incoming_base.is_dir():
            for job in self._journal.jobs([JobState.PUBLISHED]):
                gone = not self._source(job.model, job.incoming_version).is_dir()
                if gone and self._withdraw(job.model, job.version):
                    withdrawn.append((job.model, job.version))
        for model in sorted({job.model for job in self._journal.jobs([JobState.PUBLISHED])}):
            self._retain(model)
        self._write_model_config()
        self._started = True
        report = StartReport(tuple(removed), recovery, tuple(withdrawn))
        _LOG.info(
            "started: %d leftover(s) removed; %d job(s) completed, %d restarted, %d skipped; "
            "%d withdrawn", len(removed), len(recovery.completed), len(recovery.restarted),
            len(recovery.skipped), len(withdrawn),
        )
        return report

    def run(self, stop: threading.Event | None = None) -> RunSummary:
        """Run until ``stop`` is set (or, with ``once``, until nothing is left to do).

        Starts the background components first and stops them on the way out.
        """
        stop = stop or threading.Event()
        summary = self._summary
        started: list[BackgroundComponent] = []
        wakeup = InotifyWakeup.open(self._settings.incoming_base)
        try:
            for component in self._components.background:
                component.start()
                started.append(component)
            if not self._started:
                summary.start = self.start()
                self._components.on_started()
            while not stop.is_set():
                if self.step():
                    continue
                if self._settings.once and self.idle():
                    break
                if wakeup is not None:
                    wakeup.sleep(self._settings.rescan_interval_seconds)
                else:
                    stop.wait(self._settings.rescan_interval_seconds)
        finally:
            if wakeup is not None:
                wakeup.close()
            for component in reversed(started):
                component.stop()
        return summary

    def step(self) -> bool:
        """Rescan once, act on the events, run at most one job; True if a job ran."""
        parts = self._components
        with parts.serving_lock:
            self._handle(self._watcher.scan())
        if self._run_requested():
            return True
        job = self._queue.take(parts.is_paused)
        if job is None:
            return self._queue_rebuilds()
        self._run_job(job.model, job.version, self._policy_for(job.model))
        return True

    def _policy_for(self, model: str) -> ModelPolicy:
        return self._components.policy_for(model, self._settings.policy_for(model))

    def _queue_rebuilds(self) -> bool:
        """Queue the coverage-triggered rebuilds that are due; True if any was."""
        rebuilds = self._components.rebuilds
        if rebuilds is None:
            return False
        try:
            planned = rebuilds.due(self._journal, self._policy_for, self._components.is_paused)
        except (SidecarError, ShapeStoreError, OSError, sqlite3.Error) as exc:
            _LOG.warning("rebuilds not judged this time: %s", exc)
            return False
        for rebuild in planned:
            self._journal.discover(rebuild.model, rebuild.version, reason=rebuild.reason)
        return bool(planned)

    def _run_job(self, model: str, version: int, policy: ModelPolicy) -> JobResult:
        with self._components.serving_lock:
            result = run_version_job(self._deps, model, version, policy)
            self._summary.results.append(result)
            if result.state is JobState.PUBLISHED:
                self._retain(model)
                self._write_model_config()
        return result

    def _run_requested(self) -> bool:
        """Run one conversion asked for from outside, if any; True if one ran."""
        try:
            request = self._components.requests.get_nowait()
        except queue.Empty:
            return False
        if not request.future.set_running_or_notify_cancel():
            return True
        try:
            if request.restart:
                self._journal.restart(request.model, request.version, reason=request.reason)
            else:
                self._journal.discover(request.model, request.version,
                                       reason=request.reason or None)
            request.future.set_result(
                self._run_job(request.model, request.version, request.policy))
        except Exception as error:  # the caller's future carries it; the loop goes on
            request.future.set_exception(error)
        return True

    def idle(self) -> bool:
        """True when no job waits and no version with files is still settling.

        Empty version directories, and (with a marker file) versions without their
        marker, are not waited for: they are left for a later run.
        """
        if self._queue.pending():
            return False
        if self._settings.marker_file is not None:
            return True
        return not any(
            _has_files(self._source(model, version)) for model, version in self._watcher.waiting()
        )

    # -- events --------------------------------------------------------------------------

    def _handle(self, events: Sequence[WatchEvent]) -> None:
        for event in events:
            if event.kind is WatchEventKind.READY:
                self._on_ready(event)
            elif event.kind is WatchEventKind.VANISHED:
                self._on_vanished(event)
            else:
                _LOG.info("%s/%s appeared; waiting for it to settle", event.model, event.version)

    def _on_ready(self, event: WatchEvent) -> None:
        try:
            served = numbering.served_version(event.version)
        except VersionNumberError as exc:
            _LOG.error("%s/%s cannot be served: %s", event.model, event.version, exc)
            return
        job, new = self._journal.discover(event.model, served)
        if new:
            _LOG.info("%s/%s is ready; queued as %s", event.model, event.version,
                      numbering.describe(served))
        elif job.state is JobState.PUBLISHED:
            _LOG.info("%s/%s was published before; a published version is never republished",
                      event.model, event.version)
        elif job.state in (JobState.FAILED, JobState.SKIPPED):
            _LOG.info("%s/%s stays %s (%s)", event.model, event.version, job.state.value,
                      job.reason)

    def _on_vanished(self, event: WatchEvent) -> None:
        """Skip the waiting builds of an incoming version that left; withdraw its published
        ones (every rebuild of it, newest first)."""
        for job in self._journal.jobs(model=event.model):
            if job.incoming_version != event.version:
                continue
            if job.state is JobState.DISCOVERED:
                self._journal.advance(
                    job.model, job.version, JobState.SKIPPED,
                    reason="removed from incoming before its turn; nothing was published",
                )
            elif job.state is JobState.PUBLISHED and self._withdraw(job.model, job.version):
                self._summary.withdrawn.append((job.model, job.version))
                self._write_model_config()

    # -- serving base --------------------------------------------------------------------

    def _withdraw(self, model: str, version: int) -> bool:
        try:
            removed = withdraw_version(self._publisher.model_dir(model), version)
        except OnlyServableVersionError as exc:
            _LOG.warning("%s", exc)
            return False
        except SidecarError as exc:
            _LOG.error("could not withdraw %s/%s: %s", model, version, exc)
            return False
        if removed:
            _LOG.info("%s/%s left incoming; withdrawn from serving", model, version)
        return removed

    def _retain(self, model: str) -> None:
        keep = self._settings.policy_for(model).keep_versions
        try:
            retired = apply_retention(self._publisher.model_dir(model), keep)
        except SidecarError as exc:
            _LOG.error("retention for %s failed: %s", model, exc)
            return
        for version in retired:
            _LOG.info("%s/%s retired (keeping the newest %d)", model, version, keep)
            self._summary.retired.append((model, version))

    def _write_model_config(self) -> None:
        try:
            if self._config_writer.write(self._publisher.models()):
                _LOG.info("model config %s rewritten", self._config_writer.path)
        except SidecarError as exc:
            _LOG.error("%s", exc)

    def _source(self, model: str, incoming_version: int) -> Path:
        return self._settings.incoming_base / model / str(incoming_version)


def _has_files(directory: Path) -> bool:
    return any(files for _, _, files in os.walk(directory))
