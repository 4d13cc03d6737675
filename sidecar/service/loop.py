"""The long-running sidecar: watch incoming, run one job at a time, keep serving tidy, and
report what it did (:mod:`sidecar.service.summary`).

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
queues what other replicas built (:mod:`sidecar.service.fleet_upkeep`), holds back a job whose
key another replica holds until that replica's lease could have run out, and reports once
the replica has caught up.

The loop only runs its parts: :mod:`sidecar.service.wiring` builds them from the settings.

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
from pathlib import Path
from types import TracebackType

from sidecar.admin.backend import ConversionRequest
from sidecar.base.errors import SidecarError, StorageError
from sidecar.base.faults import FaultArea, FaultBoard
from sidecar.config import ModelPolicy, Settings
from sidecar.jobs import JobResult, run_version_job
from sidecar.publish import VersionPublisher
from sidecar.service.commands import run_requested
from sidecar.service.summary import RunSummary, StartReport
from sidecar.service.wiring import BackgroundComponent, ServiceParts
from sidecar.state import JobJournal, JobState, recover_interrupted_jobs
from sidecar.tfserving import numbering
from sidecar.watch import (
    IncomingFault,
    InotifyWakeup,
    WatchEventKind,
    incoming_version_dir,
    look_at_incoming,
)

_LOG = logging.getLogger("sidecar.service")

_MAX_STEP_BACKOFF_SECONDS = 30.0
"""A loop stalled by a storage fault tries again at least this often, so it carries on
within this long once the storage works again."""


class SidecarService:
    """Watches the incoming base and publishes each ready version; use as a context manager."""

    def __init__(self, settings: Settings, parts: ServiceParts) -> None:
        self._settings = settings
        self._parts = parts
        self._step_failures = 0
        self._settle_again: str | None = None
        """Why the last step failed, until the jobs it interrupted are settled."""
        self._started = False

    @property
    def journal(self) -> JobJournal:
        """The job journal (read it for states, reasons and timings)."""
        return self._parts.journal

    @property
    def publisher(self) -> VersionPublisher:
        """The serving base's publisher."""
        return self._parts.publisher

    @property
    def faults(self) -> FaultBoard:
        """The storage faults the service is riding out."""
        return self._parts.faults

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
        self._parts.journal.close()

    def start(self) -> StartReport:
        """Recover from whatever a previous process left, then write the model config."""
        parts = self._parts
        if self._settings.watch.once and not self._settings.paths.incoming_base.is_dir():
            raise StorageError(
                "the incoming base directory does not exist",
                where=str(self._settings.paths.incoming_base),
                fix="create it, or point --incoming at the directory where models land",
                area=FaultArea.INCOMING,
            )
        self._settings.paths.serving_base.mkdir(parents=True, exist_ok=True)
        removed = parts.publisher.clean_leftovers() + parts.upkeep.clean_leftovers()
        recovery = recover_interrupted_jobs(
            parts.journal, is_in_serving=parts.publisher.is_published
        )
        withdrawn = self._withdraw_gone_at_start()
        for model in sorted({job.model for job in parts.journal.jobs([JobState.PUBLISHED])}):
            parts.upkeep.retain(model)
        parts.upkeep.write_model_config()
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
        parts = self._parts
        published = parts.journal.jobs([JobState.PUBLISHED])
        expected = {(job.model, job.incoming_version) for job in published}
        parts.watcher.expect(expected)
        view = look_at_incoming(self._settings.paths.incoming_base, expected,
                                is_served=parts.publisher.serves)
        self._report_incoming(view.faults)
        gone = set(view.gone(expected))
        withdrawn: list[tuple[str, int]] = []
        for job in published:
            if (job.model, job.incoming_version) in gone and parts.upkeep.withdraw(
                    job.model, job.version):
                withdrawn.append((job.model, job.version))
        return withdrawn

    def run(self, stop: threading.Event | None = None) -> RunSummary:
        """Run until ``stop`` is set (or, with ``once``, until nothing is left to do).

        Starts the background components first and stops them on the way out.
        """
        stop = stop or threading.Event()
        parts = self._parts
        started: list[BackgroundComponent] = []
        wakeup = InotifyWakeup.open(self._settings.paths.incoming_base)
        parts.commands.start()
        try:
            for component in parts.background:
                component.start()
                started.append(component)
            if not self._started:
                parts.summary.start = self.start()
                if parts.admin is not None:
                    parts.admin.mark_ready()
            while not stop.is_set():
                try:
                    ran = self.step()
                except Exception as exc:  # client traffic must never depend on this loop
                    if self._settings.watch.once:
                        raise
                    stop.wait(self._step_failed(exc))
                    continue
                if ran:
                    continue
                # Only --once and a replica catching up ask (it lists the settling versions).
                catching_up = parts.fleet is not None and not parts.fleet.caught_up
                idle = (self._settings.watch.once or catching_up) and self.idle()
                if idle and parts.fleet is not None:
                    parts.fleet.report_caught_up()
                if self._settings.watch.once and idle:
                    break
                if wakeup is not None:
                    wakeup.sleep(self._settings.watch.rescan_interval_seconds)
                else:
                    stop.wait(self._settings.watch.rescan_interval_seconds)
        finally:
            parts.commands.stop()
            if wakeup is not None:
                wakeup.close()
            for component in reversed(started):
                component.stop()
        return parts.summary

    def step(self) -> bool:
        """Rescan once, act on the events, run at most one job; True if a job ran.

        Raises what storage refused with (the run loop reports it and tries again).
        """
        parts = self._parts
        events = parts.watcher.scan()
        try:
            parts.changes.apply(events)
        except BaseException:
            # Report these versions READY again once they settle, so none is lost.
            for event in events:
                if event.kind is WatchEventKind.READY:
                    parts.watcher.resettle(event.model, event.version)
            raise
        self._report_incoming(parts.watcher.faults)
        wrote = self._settle_after_fault() | self._restart_due_retries()
        held = parts.changes.held
        if parts.fleet is not None:
            wrote |= parts.fleet.between_jobs()
            held |= parts.fleet.waiting()
        ran = parts.commands.run_next(self._convert_requested)
        if not ran:
            job = parts.queue.take(parts.controls.is_paused, held)
            if job is None:
                ran = self._queue_rebuilds()
            else:
                self._run_job(job.model, job.version, self._policy_for(job.model))
                ran = True
        if ran or wrote:  # the state directory took writes again, the step went through
            self._step_failures = 0
            parts.faults.clear(FaultArea.STATE)
            parts.faults.clear(FaultArea.SERVING)
        return ran

    def _step_failed(self, exc: Exception) -> float:
        """Report a step's failure (a storage fault, or a bug); the seconds to wait before
        the next step."""
        self._step_failures += 1
        self._settle_again = f"a failure ({exc})"
        delay = min(self._parts.jobs.retry.delay(self._step_failures),
                    _MAX_STEP_BACKOFF_SECONDS)
        # A storage fault is reported under the area its raise named (a STORE fault is
        # cleared by the replica's claim renewals, the store's probe). An OSError or sqlite
        # error that nothing translated says neither what was done nor where: a bug.
        if not isinstance(exc, StorageError):
            _LOG.error("a step of the pipeline failed unexpectedly (a bug: please report it "
                       "with this log); trying again in %.1f s", delay, exc_info=exc)
        elif exc.area is None:
            _LOG.error("a step failed on storage: %s; trying again in %.1f s", exc, delay)
        else:
            self._parts.faults.report(exc.area, str(exc))
        return delay

    def _settle_after_fault(self) -> bool:
        """After a failed step, settle jobs it left mid-way, as at start; True if any was."""
        if self._settle_again is None:
            return False
        report = recover_interrupted_jobs(self._parts.journal, cause=self._settle_again,
                                          is_in_serving=self._parts.publisher.is_published)
        self._settle_again = None
        return bool(report.completed or report.restarted or report.skipped)

    def _restart_due_retries(self) -> bool:
        """Send the failed jobs whose retry is due back to the queue; True if any was."""
        journal = self._parts.journal
        due = journal.due_retries()
        for job in due:
            _LOG.info("%s/%s: retrying after a failure that can pass (attempt %d)", job.model,
                      job.version, job.attempts + 1)
            journal.restart(job.model, job.version,
                            reason=f"retried by itself after: {job.reason}")
        return bool(due)

    def _report_incoming(self, faults: Sequence[IncomingFault]) -> None:
        if faults:
            self._parts.faults.report(FaultArea.INCOMING,
                                      "; ".join(fault.describe() for fault in faults))
        else:
            self._parts.faults.clear(FaultArea.INCOMING)

    def _policy_for(self, model: str) -> ModelPolicy:
        return self._parts.controls.policy_for(model, self._settings.policy_for(model))

    def _queue_rebuilds(self) -> bool:
        """Queue the coverage-triggered rebuilds that are due; True if any was."""
        parts = self._parts
        if parts.rebuilds is None:
            return False
        try:
            planned = parts.rebuilds.due(parts.journal, self._policy_for,
                                         parts.controls.is_paused)
        except (SidecarError, OSError, sqlite3.Error) as exc:
            _LOG.warning("rebuilds not judged this time: %s", exc)
            return False
        for rebuild in planned:
            parts.journal.discover(rebuild.model, rebuild.version, reason=rebuild.reason)
        return bool(planned)

    def _run_job(self, model: str, version: int, policy: ModelPolicy) -> JobResult:
        parts = self._parts
        result = run_version_job(parts.jobs, model, version, policy)
        if result.retry_in is not None and parts.fleet is not None:
            # Another replica holds its key: run it again once that replica's lease could
            # have run out, or sooner.
            parts.fleet.hold(model, version,
                             min(result.retry_in, self._settings.watch.rescan_interval_seconds))
            return result
        if result.state is JobState.DISCOVERED:  # its source changed: wait for it again
            if parts.watcher.resettle(model, numbering.incoming_version(version)):
                parts.changes.hold(model, version)
            return result
        parts.summary.results.append(result)
        if result.state is JobState.PUBLISHED:
            parts.upkeep.retain(model)
            parts.upkeep.write_model_config()
        return result

    def _convert_requested(self, request: ConversionRequest) -> JobResult:
        """Run a conversion the admin API asked for as a job of the loop."""
        return run_requested(request, self._parts.journal, self._run_job)

    def idle(self) -> bool:
        """True when no job waits and no version with files is still settling.

        Empty version directories, and (with a marker file) versions without their
        marker, are not waited for: they are left for a later run.
        """
        if self._parts.queue.pending():
            return False
        if self._settings.watch.marker_file is not None:
            return True
        return not any(_has_files(self._source(model, version))
                       for model, version in self._parts.watcher.waiting())

    def _source(self, model: str, incoming_version: int) -> Path | None:
        return incoming_version_dir(self._settings.paths.incoming_base, model, incoming_version)


def _has_files(directory: Path | None) -> bool:
    return directory is not None and any(files for _, _, files in os.walk(directory))
