"""The long-running sidecar: watch incoming, run one job at a time, keep serving tidy, and
report what it did (:class:`StartReport`, :class:`RunSummary`).

One thread does everything in turn: rescan the incoming base, act on what
changed, run what the admin API asked for, run the next job, then apply retention
and rewrite TF Serving's model config. Jobs run one at a time (one build per
device), and this thread is the serving base's one writer: the admin API's
conversions and rollbacks reach it through :class:`~sidecar.service.commands.LoopCommands`,
so publishing, withdrawing, retention and rollbacks never race.
A vanished version is noticed between jobs; a job notices its own source
vanishing, or changing, at its stage boundaries.

Storage faults never stop the service (the tap and TF Serving go on serving): a
fault in the incoming base withdraws nothing and is reported (admin health,
``tftrt_sidecar_storage_fault``, the log) until it passes; a step that fails on
storage (the state disk full) is reported and retried with a backoff, interrupted
jobs are settled again, and a job that failed on storage is retried by itself
(:mod:`sidecar.jobs.retry`). Only ``--once`` gives up on a storage error.

In a fleet (``--store``) the loop also, between jobs, applies the fleet's rollbacks and
queues what other replicas built (:mod:`sidecar.service.fleet_upkeep`), and holds back a job whose
key another replica holds until that replica's lease could have run out.

Start-up order (each step assumes the previous one): delete stale staging
directories and config temp files, settle interrupted jobs from the journal,
withdraw published versions whose source left incoming while the sidecar was
down (not while incoming is faulty), apply retention, write the model config.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from sidecar.admin.backend import ConversionRequest
from sidecar.base.errors import SidecarError, StorageError
from sidecar.base.faults import FaultArea
from sidecar.config import ModelPolicy, Settings
from sidecar.jobs import (
    JobDependencies,
    JobQueue,
    JobResult,
    run_version_job,
)
from sidecar.jobs.retry import RetryPolicy
from sidecar.publish import VersionPublisher
from sidecar.service.fleet_upkeep import FleetCatchUp, FleetUpkeep
from sidecar.service.incoming_changes import IncomingChanges
from sidecar.service.serving_upkeep import ServingUpkeep
from sidecar.service.wiring import BackgroundComponent, ServiceComponents
from sidecar.state import JobJournal, JobState, RecoveryReport, recover_interrupted_jobs
from sidecar.tfserving import numbering
from sidecar.watch import (
    IncomingFault,
    IncomingWatcher,
    InotifyWakeup,
    WatchEventKind,
    incoming_version_dir,
    look_at_incoming,
)

_LOG = logging.getLogger("sidecar.service")

_MAX_STEP_BACKOFF_SECONDS = 30.0
"""A loop stalled by a storage fault tries again at least this often, so it carries on
within this long once the storage works again."""


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
        """The jobs whose last result is FAILED (a failure a retry made good is not)."""
        last = {(r.model, r.version): r for r in self.results}
        return [r for r in last.values() if r.state is JobState.FAILED]


class SidecarService:
    """Watches the incoming base and publishes each ready version; use as a context manager."""

    def __init__(self, settings: Settings, components: ServiceComponents | None = None) -> None:
        self._settings = settings
        self._components = components or ServiceComponents()
        parts = self._components
        self._journal = JobJournal.open(settings.state_dir, clock=parts.wall_clock)
        self._publisher = VersionPublisher(settings.serving_base, checkpoint=parts.checkpoint)
        self._summary = RunSummary()
        self._upkeep = ServingUpkeep(
            settings, self._publisher,
            on_retired=lambda model, version: self._summary.retired.append((model, version)),
            served_first=self._journal.originals_served_first,
        )
        self._watcher = IncomingWatcher(
            settings.incoming_base, settle_seconds=settings.settle_seconds,
            marker_file=settings.marker_file, clock=parts.monotonic, is_served=self._is_served,
        )
        self._faults = parts.faults
        self._retry = RetryPolicy(settings.retry_backoff_seconds,
                                  settings.retry_backoff_max_seconds)
        self._changes = IncomingChanges(self._journal, self._publisher, self._upkeep,
                                        self._summary.withdrawn,
                                        incoming_base=settings.incoming_base)
        self._step_failures = 0
        self._settle_again: str | None = None
        """Why the last step failed, until the jobs it interrupted are settled."""
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
            retry=self._retry,
            fleet=parts.fleet,
            is_rolled_back=parts.is_rolled_back,
        )
        self._fleet = FleetUpkeep(
            None if parts.fleet is None else FleetCatchUp(
                parts.fleet, self._journal, settings.incoming_base,
                interval_seconds=max(settings.rescan_interval_seconds, 5.0),
                is_rolled_back=parts.is_rolled_back, clock=parts.monotonic),
            apply_rollbacks=parts.apply_rollbacks,
            write_model_config=self._upkeep.write_model_config, clock=parts.monotonic)
        self._started = False
        self._caught_up = False

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
        if self._settings.once and not self._settings.incoming_base.is_dir():
            raise StorageError(
                "the incoming base directory does not exist",
                where=str(self._settings.incoming_base),
                fix="create it, or point --incoming at the directory where models land",
                area=FaultArea.INCOMING,
            )
        self._settings.serving_base.mkdir(parents=True, exist_ok=True)
        removed = self._publisher.clean_leftovers() + self._upkeep.clean_leftovers()
        recovery = recover_interrupted_jobs(
            self._journal, is_in_serving=self._publisher.is_published
        )
        withdrawn = self._withdraw_gone_at_start()
        for model in sorted({job.model for job in self._journal.jobs([JobState.PUBLISHED])}):
            self._upkeep.retain(model)
        self._upkeep.write_model_config()
        self._started = True
        report = StartReport(tuple(removed), recovery, tuple(withdrawn))
        _LOG.info(
            "started: %d leftover(s) removed; %d job(s) completed, %d restarted, %d skipped; "
            "%d withdrawn", len(removed), len(recovery.completed), len(recovery.restarted),
            len(recovery.skipped), len(withdrawn),
        )
        return report

    def _withdraw_gone_at_start(self) -> list[tuple[str, int]]:
        """Withdraw the published versions incoming says left while the sidecar was down
        (newest first); under an incoming fault, nothing."""
        published = self._journal.jobs([JobState.PUBLISHED])
        expected = {(job.model, job.incoming_version) for job in published}
        self._watcher.expect(expected)
        view = look_at_incoming(self._settings.incoming_base, expected,
                                is_served=self._is_served)
        self._report_incoming(view.faults)
        gone = set(view.gone(expected))
        withdrawn: list[tuple[str, int]] = []
        for job in published:
            if (job.model, job.incoming_version) in gone and self._upkeep.withdraw(
                    job.model, job.version):
                withdrawn.append((job.model, job.version))
        return withdrawn

    def run(self, stop: threading.Event | None = None) -> RunSummary:
        """Run until ``stop`` is set (or, with ``once``, until nothing is left to do).

        Starts the background components first and stops them on the way out.
        """
        stop = stop or threading.Event()
        summary = self._summary
        started: list[BackgroundComponent] = []
        wakeup = InotifyWakeup.open(self._settings.incoming_base)
        self._components.commands.start()
        try:
            for component in self._components.background:
                component.start()
                started.append(component)
            if not self._started:
                summary.start = self.start()
                self._components.on_started()
            while not stop.is_set():
                try:
                    ran = self.step()
                except Exception as exc:  # client traffic must never depend on this loop
                    if self._settings.once:
                        raise
                    stop.wait(self._step_failed(exc))
                    continue
                if ran:
                    continue
                # Only --once and the first catch-up ask (it lists the settling versions).
                idle = (self._settings.once or not self._caught_up) and self.idle()
                if idle and not self._caught_up:
                    self._caught_up = True
                    self._components.on_caught_up()
                if self._settings.once and idle:
                    break
                if wakeup is not None:
                    wakeup.sleep(self._settings.rescan_interval_seconds)
                else:
                    stop.wait(self._settings.rescan_interval_seconds)
        finally:
            self._components.commands.stop()
            if wakeup is not None:
                wakeup.close()
            for component in reversed(started):
                component.stop()
        return summary

    def step(self) -> bool:
        """Rescan once, act on the events, run at most one job; True if a job ran.

        Raises what storage refused with (the run loop reports it and tries again).
        """
        parts = self._components
        events = self._watcher.scan()
        try:
            self._changes.apply(events)
        except BaseException:
            # Report these versions READY again once they settle, so none is lost.
            for event in events:
                if event.kind is WatchEventKind.READY:
                    self._watcher.resettle(event.model, event.version)
            raise
        self._report_incoming(self._watcher.faults)
        wrote = (self._settle_after_fault() | self._restart_due_retries()
                 | self._fleet.between_jobs())
        ran = parts.commands.run_next(self._convert_requested)
        if not ran:
            job = self._queue.take(parts.is_paused, self._changes.held | self._fleet.waiting())
            if job is None:
                ran = self._queue_rebuilds()
            else:
                self._run_job(job.model, job.version, self._policy_for(job.model))
                ran = True
        if ran or wrote:  # the state directory took writes again, the step went through
            self._step_failures = 0
            self._faults.clear(FaultArea.STATE)
            self._faults.clear(FaultArea.SERVING)
        return ran

    def _step_failed(self, exc: Exception) -> float:
        """Report a step's failure (a storage fault, or a bug); the seconds to wait before
        the next step."""
        self._step_failures += 1
        self._settle_again = f"a failure ({exc})"
        delay = min(self._retry.delay(self._step_failures), _MAX_STEP_BACKOFF_SECONDS)
        # A storage fault is reported under the area its raise named (a STORE fault is
        # cleared by the replica's claim renewals, the store's probe). An OSError or sqlite
        # error that nothing translated says neither what was done nor where: a bug.
        if not isinstance(exc, StorageError):
            _LOG.error("a step of the pipeline failed unexpectedly (a bug: please report it "
                       "with this log); trying again in %.1f s", delay, exc_info=exc)
        elif exc.area is None:
            _LOG.error("a step failed on storage: %s; trying again in %.1f s", exc, delay)
        else:
            self._faults.report(exc.area, str(exc))
        return delay

    def _settle_after_fault(self) -> bool:
        """After a failed step, settle jobs it left mid-way, as at start; True if any was."""
        if self._settle_again is None:
            return False
        report = recover_interrupted_jobs(self._journal, cause=self._settle_again,
                                          is_in_serving=self._publisher.is_published)
        self._settle_again = None
        return bool(report.completed or report.restarted or report.skipped)

    def _restart_due_retries(self) -> bool:
        """Send the failed jobs whose retry is due back to the queue; True if any was."""
        due = self._journal.due_retries()
        for job in due:
            _LOG.info("%s/%s: retrying after a failure that can pass (attempt %d)", job.model,
                      job.version, job.attempts + 1)
            self._journal.restart(job.model, job.version,
                                  reason=f"retried by itself after: {job.reason}")
        return bool(due)

    def _report_incoming(self, faults: Sequence[IncomingFault]) -> None:
        if faults:
            self._faults.report(FaultArea.INCOMING,
                                "; ".join(fault.describe() for fault in faults))
        else:
            self._faults.clear(FaultArea.INCOMING)

    def _is_served(self, model: str) -> bool:
        return bool(self._publisher.published_versions(model))

    def _policy_for(self, model: str) -> ModelPolicy:
        return self._components.policy_for(model, self._settings.policy_for(model))

    def _queue_rebuilds(self) -> bool:
        """Queue the coverage-triggered rebuilds that are due; True if any was."""
        rebuilds = self._components.rebuilds
        if rebuilds is None:
            return False
        try:
            planned = rebuilds.due(self._journal, self._policy_for, self._components.is_paused)
        except (SidecarError, OSError, sqlite3.Error) as exc:
            _LOG.warning("rebuilds not judged this time: %s", exc)
            return False
        for rebuild in planned:
            self._journal.discover(rebuild.model, rebuild.version, reason=rebuild.reason)
        return bool(planned)

    def _run_job(self, model: str, version: int, policy: ModelPolicy) -> JobResult:
        result = run_version_job(self._deps, model, version, policy)
        if result.retry_in is not None:  # the fleet: another replica holds its key
            self._fleet.hold(model, version,
                             min(result.retry_in, self._settings.rescan_interval_seconds))
            return result
        if result.state is JobState.DISCOVERED:  # its source changed: wait for it again
            if self._watcher.resettle(model, numbering.incoming_version(version)):
                self._changes.hold(model, version)
            return result
        self._summary.results.append(result)
        if result.state is JobState.PUBLISHED:
            self._upkeep.retain(model)
            self._upkeep.write_model_config()
        return result

    def _convert_requested(self, request: ConversionRequest) -> JobResult:
        """Run a conversion the admin API asked for (restarting its ended job first)."""
        if request.restart:
            self._journal.restart(request.model, request.version, reason=request.reason)
        else:
            self._journal.discover(request.model, request.version,
                                   reason=request.reason or None)
        return self._run_job(request.model, request.version, request.policy)

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

    def _source(self, model: str, incoming_version: int) -> Path | None:
        return incoming_version_dir(self._settings.incoming_base, model, incoming_version)


def _has_files(directory: Path | None) -> bool:
    return directory is not None and any(files for _, _, files in os.walk(directory))
