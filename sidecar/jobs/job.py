"""One version's job: vet the original, convert, build, verify, warm up, install engines, publish.

Each state change goes into the journal before the work of that state starts,
and the flavour (converted or original) is journaled before the rename that
publishes it, so recovery after a crash knows what happened. Whatever fails,
the job ends in a recorded state and nothing partial is ever renamed into the
serving base:

- the original does not load as TF Serving loads it, or fails on its replay
  inputs: FAILED;
- conversion, build, save or verification fails: the ORIGINAL is published,
  with the reason;
- the version vanished from incoming, is already in the serving base, or is
  older than every version retention keeps: SKIPPED;
- the storage refuses (disk full, I/O error, read-only, incoming detached), at any
  step and however the error reaches the job: FAILED with a retry time
  (:mod:`sidecar.jobs.retry`), never a reason to publish the original;
- the version's content changed under the job (its fingerprint, taken at the
  start, differs before publishing): the work is abandoned and the job goes back
  to DISCOVERED, to start again once the version settles.

With the policy's ``serve_original_first`` (the default), the first build of an
incoming version (``N * 1000``) converts nothing: it vets the original, publishes it
at once with a warmup file of the replay inputs, and journals that its converted form
is built as ``N * 1000 + 1`` (:func:`sidecar.tfserving.numbering.converted_form`). The
journal queues that job in the transaction that records the original PUBLISHED, so a
crash never loses it; it then runs as any job does, and TF Serving serves it, the newer
number, once it is published. That job never publishes the original again: where the
rule above would, it ends SKIPPED with the reason, the original served first staying
served; and it is not published at all once that original left the serving base
(rolled back or withdrawn). In a fleet every replica publishes the original itself (it
needs no conversion, nor the store) and claims only the converted form's key.

In a fleet (:mod:`sidecar.jobs.fleet_work`) the job first claims its key: it builds
only under a lease, completing the key's artifact in the store just before it publishes;
it installs the artifact when the key is complete, once the copy matches the manifest its
builder recorded and loads as TF Serving loads it; it waits (stays DISCOVERED, with a time
to try again) while another replica holds the key; and it goes back to DISCOVERED, to claim
the key again at once, when it lost its lease (it was paused past it: it installs the
winner's artifact) or refused a damaged artifact (the key is then built again under a new
lease, by this replica or another).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from converter import InstallResult, install_engines
from sidecar.base.errors import (
    SidecarError,
    StorageError,
    VersionAlreadyPublishedError,
    storage_error_in,
)
from sidecar.base.faults import FaultArea
from sidecar.config import ModelPolicy
from sidecar.fleet import ArtifactRecord, Completed, DamagedArtifactError, Held, LeaseLostError
from sidecar.jobs.conversion import (
    ConverterLike,
    computed_precision,
    conversion_params,
    engines_kept,
    save_into_staging,
)
from sidecar.jobs.dependencies import JobDependencies
from sidecar.jobs.errors import (
    ENDS_THE_ATTEMPT,
    FAILS_ON_PURPOSE,
    ModelLoadError,
    OriginalOutOfViewError,
    RolledBackError,
    SourceChangedError,
    StaleArtifactError,
    VersionTooOldError,
    VersionVanishedError,
)
from sidecar.jobs.fleet_work import FleetClaim, FleetOrigin
from sidecar.jobs.observer import StageOutcome
from sidecar.jobs.original import Prepared, prepare_original, verify_against_original
from sidecar.jobs.precision_plan import plan_precision
from sidecar.jobs.replay import ReplayInputs
from sidecar.jobs.result import JobResult
from sidecar.jobs.session_model import SessionModel
from sidecar.jobs.source import JobSource
from sidecar.jobs.stages import JobStages
from sidecar.jobs.verify import AccuracyCheck, Comparison, accuracy_record
from sidecar.publish import StagedVersion
from sidecar.publish.retention import rollback_target
from sidecar.publish.source_links import check_source_links
from sidecar.state import Flavour, Job, JobState
from sidecar.tfserving import numbering
from sidecar.tfserving.warmup import OverLimit, write_warmup_file

_LOG = logging.getLogger("sidecar.jobs")

_T = TypeVar("_T")

class _ConversionFailed(Exception):
    """Private: the converted model cannot be published; publish the original instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def run_version_job(
    deps: JobDependencies, model: str, version: int, policy: ModelPolicy
) -> JobResult:
    """Run the DISCOVERED job for ``version`` of ``model`` to a final state; return its result.

    ``version`` is the served number; the SavedModel is read from the incoming
    version it maps to (:mod:`sidecar.tfserving.numbering`).
    """
    return _VersionJob(deps, model, version, policy).run()


class _VersionJob:
    def __init__(
        self, deps: JobDependencies, model: str, version: int, policy: ModelPolicy
    ) -> None:
        self._deps = deps
        self._model = model
        self._version = version
        self._policy = policy
        self._named = f"model {model!r} {numbering.describe(version)}"
        self._input = JobSource(
            deps.incoming_base, model, numbering.incoming_version(version), named=self._named,
            is_served=lambda name: bool(deps.publisher.published_versions(name)),
        )
        self._source = self._input.path
        self._stages = JobStages(deps, model, version)
        self._replay: ReplayInputs | None = None
        # The signature converted: the configured one, or the busiest (choose_signature).
        self._signature_key = deps.settings.signature_key
        self._warmup_records = 0
        self._engines_kept = 0
        self._engines: InstallResult | None = None
        self._verification: Comparison | None = None
        self._claim = FleetClaim(deps.fleet, model, version)
        self._origin: FleetOrigin | None = None
        self._original_first = policy.serve_original_first and numbering.generation(version) == 0
        # For the converted form of an original served first: that original's job.
        self._served_first: Job | None = None

    # -- the pipeline --------------------------------------------------------------------

    def run(self) -> JobResult:
        try:
            self._check_wanted()
            if self._original_first:  # every replica copies its own: no claim, no store
                self._input.start()
                return self._serve_original_first()
            claimed = self._claim.claim()
            if isinstance(claimed, Held):
                return self._wait_for(claimed)
            self._input.start()
            if isinstance(claimed, Completed):
                return self._install()
            with self._claim.kept():
                return self._build()
        except SourceChangedError as exc:
            return self._start_again(exc)
        except LeaseLostError as exc:  # install the winner's at once
            return self._start_again(exc, retry_in=0.0)
        except DamagedArtifactError as exc:
            return self._refuse(exc)
        except (VersionVanishedError, VersionTooOldError, VersionAlreadyPublishedError,
                RolledBackError, OriginalOutOfViewError) as exc:
            return self._end(JobState.SKIPPED, str(exc))
        except Exception as exc:
            return self._failed(exc)
        finally:
            self._claim.let_go()

    def _build(self) -> JobResult:
        self._enter(JobState.CONVERTING)
        prepared = self._prepare()
        if prepared.replay is None:
            return self._instead_of_converted(prepared, prepared.no_replay_reason)
        try:
            return self._convert_and_publish(prepared)
        except _ConversionFailed as failure:
            self._stages.finish(StageOutcome.FELL_BACK)
            return self._instead_of_converted(prepared, failure.reason)

    def _serve_original_first(self) -> JobResult:
        """Vet the original and publish it at once, warmed up for the replay inputs; the
        journal queues its converted form as the next served number as it records it
        PUBLISHED. With nothing to replay there is nothing to convert: the original is
        published as it always was."""
        self._enter(JobState.CONVERTING)
        prepared = self._prepare()
        if prepared.replay is None:
            return self._publish_original(prepared, prepared.no_replay_reason)
        converted = numbering.converted_form(self._version)
        return self._publish_original(prepared, (
            "served first (serve_original_first) while its converted form is built as "
            f"version {converted}"), converted_as=converted)

    def _prepare(self) -> Prepared:
        prepared = prepare_original(self._deps, self._model, self._version, self._source,
                                    self._policy)
        self._signature_key, self._replay = prepared.signature_key, prepared.replay
        return prepared

    def _instead_of_converted(self, prepared: Prepared, why: str) -> JobResult:
        """The converted form cannot be published: publish the original instead, or, for
        the converted form of an original served first, keep serving that one."""
        if self._served_first is None:
            return self._publish_original(prepared, why)
        return self._keep_served_first(why)

    def _keep_served_first(self, why: str) -> JobResult:
        """End the converted form of an original served first SKIPPED with ``why``: the
        original stays served (publishing it again would only copy it)."""
        assert self._served_first is not None
        reason = (f"{why.rstrip('.')}; the original served first stays served as "
                  f"{numbering.describe(self._served_first.version)}")
        _LOG.warning("%s/%s: %s", self._model, self._version, reason)
        return self._end(JobState.SKIPPED, reason)

    def _install(self) -> JobResult:
        """Publish the key's completed artifact, which another replica built (or this one,
        before a crash kept it from publishing)."""
        self._enter(JobState.VERIFYING)
        with self._deps.publisher.stage(self._model, self._version) as staged:
            record = self._claim.copy_artifact(staged.path)  # checked against its manifest
            if record.source_fingerprint not in (None, self._input.fingerprint):
                raise StaleArtifactError(self._named, str(self._source), record.built_by)
            self._check_loads(staged.path, record)
            if self._served_first is not None and record.flavour == Flavour.ORIGINAL.value:
                return self._keep_served_first(
                    f"replica {record.built_by!r} published the original for it: {record.reason}")
            self._origin = FleetOrigin(record.built_by, installed=True)
            self._engines = self._install_engines(staged.path)
            return self._commit(staged, Flavour(record.flavour), record.reason)

    def _check_loads(self, staging: Path, record: ArtifactRecord) -> None:
        """DamagedArtifactError unless the installed copy loads through the TF1 Session
        loader, as TF Serving will load it: its builder's copy did, so this catches what
        the manifest cannot (an artifact completed before manifests, a builder's fault)."""
        try:
            with SessionModel.open(staging, self._deps.settings.tags):
                pass
        except ModelLoadError as exc:
            storage = storage_error_in(exc, action="load the installed copy", path=staging,
                                       area=FaultArea.SERVING)
            if storage is not None:  # this replica's disk, not the artifact
                raise storage from exc
            raise DamagedArtifactError(
                f"the fleet store's artifact of {record.key.describe()} (generation "
                f"{record.generation}, built by {record.built_by!r}) is damaged: {exc.what}",
                where=str(record.key.path), generation=record.generation) from exc

    def _refuse(self, damaged: DamagedArtifactError) -> JobResult:
        """Refuse a damaged artifact of the store: the job goes back to DISCOVERED, to claim
        the key again at once and build it under a new lease (or wait for the replica that
        does, and install its artifact). FAILED, retried by itself, when the fleet refused
        the key too often to build it again by itself, or the store refuses the refusal."""
        try:
            self._claim.reject(damaged)
        except (DamagedArtifactError, StorageError) as exc:
            return self._failed(exc)
        return self._start_again(damaged, retry_in=0.0)

    def _wait_for(self, held: Held) -> JobResult:
        """Leave the job DISCOVERED while ``held.replica`` builds it: it is tried again
        when that replica's lease could have expired, or sooner."""
        reason = (f"replica {held.replica!r} is building it (lease generation "
                  f"{held.generation}); it is installed from the fleet store once complete")
        _LOG.info("%s/%s: %s", self._model, self._version, reason)
        return JobResult(self._model, self._version, JobState.DISCOVERED, reason,
                         retry_in=held.retry_after)

    def _failed(self, exc: Exception) -> JobResult:
        """End a job that raised ``exc``: as its source explains it, else FAILED (with a retry
        time when the error can pass)."""
        try:
            self._input.check()
        except SourceChangedError as changed:
            return self._start_again(changed)
        except VersionVanishedError as gone:
            return self._end(JobState.SKIPPED, str(gone))
        except StorageError as fault:  # incoming failed: that explains whatever broke
            exc = fault
        # What TensorFlow or the converter raised names a file at most, not its storage.
        error: SidecarError | None = storage_error_in(exc, action="run the job",
                                                      path=self._source, area=None)
        if error is None and isinstance(exc, SidecarError):
            error = exc
        if error is None:
            self._internal_error(logging.ERROR, "unexpected error; the job ends FAILED", exc)
            return self._end(JobState.FAILED, f"internal error: {type(exc).__name__}: {exc}")
        if not error.retryable:
            return self._end(JobState.FAILED, str(error))
        job = self._deps.journal.get(self._model, self._version)
        delay = self._deps.retry.delay(job.attempts if job else 1)
        incoming = numbering.incoming_version(self._version)
        return self._end(JobState.FAILED, (
            f"{error}; the sidecar retries it by itself in {delay:g} s, or now with "
            f"`tftrt-sidecar admin convert {self._model} {incoming} --rebuild`"), retry_after=delay)

    def _start_again(self, why: SidecarError, retry_in: float | None = None) -> JobResult:
        """Abandon this attempt and send the job back to DISCOVERED (not a finished job):
        its source changed (it runs once the version settles again), or its fleet lease was
        lost (it runs again at once, after ``retry_in`` seconds, to install the winner's)."""
        reason = str(why)
        self._stages.restart(reason)
        _LOG.warning("%s/%s: %s", self._model, self._version, reason)
        return JobResult(self._model, self._version, JobState.DISCOVERED, reason,
                         retry_in=retry_in)

    def _check_wanted(self) -> None:
        publisher = self._deps.publisher
        self._input.check()
        if self._deps.is_rolled_back(self._model, self._version):
            raise RolledBackError(self._named, str(self._source))
        if publisher.is_published(self._model, self._version):
            raise VersionAlreadyPublishedError(
                self._model, self._version, publisher.version_dir(self._model, self._version)
            )
        published = publisher.published_versions(self._model)
        beside = rollback_target(published, self._deps.journal.originals_served_first(
            self._model))  # retention keeps it without counting it
        newer = [v for v in published if v > self._version and v != beside]
        if len(newer) >= self._policy.keep_versions:
            raise VersionTooOldError(
                f"{self._named} is older than the {self._policy.keep_versions} newest "
                f"published version(s) {newer}, so retention would remove it at once",
                where=str(self._source),
                fix="land it under a higher version number, or raise keep_versions",
            )
        self._served_first = self._deps.journal.served_first(self._model, self._version)
        if self._served_first is not None:
            original = self._served_first.version
            if not publisher.is_published(self._model, original) or self._deps.is_rolled_back(
                    self._model, original):
                raise OriginalOutOfViewError(self._named, numbering.describe(original),
                                             str(self._source))
        # Before anything reads the model: conversion must not read what publishing refuses.
        check_source_links(self._source, self._deps.incoming_base)

    def _convert_and_publish(self, prepared: Prepared) -> JobResult:
        assert prepared.replay is not None
        replay, settings = prepared.replay, self._deps.settings
        plan = plan_precision(self._policy.precision, replay)
        if plan.precision_mode != self._policy.precision:
            _LOG.warning("%s/%s: %s", self._model, self._version, plan.reason)
        converter: ConverterLike = self._attempt("loading the model for conversion", lambda: (
            self._deps.converter_factory(
                self._source, settings.tags, self._signature_key,
                conversion_params(self._policy, plan.precision_mode),
            )
        ))
        self._attempt("conversion", lambda: converter.convert(plan.calibration))
        self._enter(JobState.BUILDING)
        self._attempt("building engines", lambda: converter.build(replay.input_fn()))
        self._enter(JobState.VERIFYING)
        with self._deps.publisher.stage(self._model, self._version) as staged:
            self._attempt("saving the converted model",
                          lambda: save_into_staging(converter, staged.path), staged.path,
                          FaultArea.SERVING)
            self._deps.checkpoint("job-saved")
            report = converter.report()
            self._engines_kept = engines_kept(report)
            self._write_warmup(staged.path, replay)
            precision = computed_precision(report)
            check = self._accuracy_check(precision)
            self._verification = verification = self._attempt(
                "verification", lambda: verify_against_original(
                    prepared, staged.path, self._deps.settings, check)
            )
            self._attempt("writing the accuracy record", lambda: accuracy_record(
                precision, plan.outcome(report.chosen, precision), prepared.checked_on,
                verification).write(staged.path),
                staged.path)
            if report.nothing_to_compile and self._served_first is not None:
                return self._keep_served_first(
                    "the converter found nothing to compile; the model is unchanged")
            if report.nothing_to_compile:
                return self._commit(staged, Flavour.ORIGINAL, (
                    "the converter found nothing to compile; the model is unchanged "
                    "(see assets.extra/tftrt/conversion.json)"))
            self._engines = self._install_engines(staged.path)
            return self._commit(staged, Flavour.CONVERTED, None)

    def _accuracy_check(self, precision: str) -> AccuracyCheck:
        """The policy's accuracy check for a version computing in ``precision``."""
        policy = self._policy
        tolerance = policy.max_scaled_error
        return AccuracyCheck(
            policy.accuracy,
            self._deps.settings.tolerance_for(precision) if tolerance is None else tolerance,
            policy.min_top1_agreement)

    def _publish_original(self, prepared: Prepared, why: str,
                          converted_as: int | None = None) -> JobResult:
        self._input.check()
        _LOG.warning("%s/%s: publishing the original: %s", self._model, self._version, why)
        self._enter(JobState.VERIFYING)
        with self._deps.publisher.stage(self._model, self._version) as staged:
            staged.copy_from(self._source, links_within=self._deps.incoming_base)
            if prepared.replay is not None:
                self._write_warmup(staged.path, prepared.replay)
            with SessionModel.open(staged.path, self._deps.settings.tags) as copy:
                if prepared.replay is not None:
                    copy.run(self._signature_key, prepared.replay.inputs[:1])
            return self._commit(staged, Flavour.ORIGINAL, why, converted_as)

    # -- steps ---------------------------------------------------------------------------

    def _write_warmup(self, staging: Path, replay: ReplayInputs) -> None:
        requests = replay.predict_requests(self._model, self._signature_key)
        written = write_warmup_file(staging, requests, over_limit=OverLimit.TRUNCATE)
        self._warmup_records = written.written

    def _install_engines(self, staging: Path) -> InstallResult:
        try:
            result = install_engines(staging, self._deps.engine_cache_dir)
        except OSError as exc:
            raise StorageError.from_os_error(
                exc, action="install engines into the engine cache",
                path=self._deps.engine_cache_dir, area=FaultArea.SERVING,
            ) from exc
        self._deps.checkpoint("job-engines-installed")
        return result

    def _commit(self, staged: StagedVersion, flavour: Flavour, why: str | None,
                converted_as: int | None = None) -> JobResult:
        self._input.check()
        # Under a lease the fleet's artifact is completed first (LeaseLostError: this
        # replica's work is void); an installed one has its origin already.
        self._origin = self._claim.complete(
            staged.path, flavour=flavour.value, reason=why,
            source_fingerprint=self._input.fingerprint) or self._origin
        origin = self._origin
        self._deps.journal.choose_flavour(
            self._model, self._version, flavour, why=why,
            source_fingerprint=self._input.fingerprint,
            built_by=origin.built_by if origin else None,
            installed=origin.installed if origin else False, converted_as=converted_as)
        self._deps.checkpoint("job-flavour-chosen")
        path = staged.commit()
        self._stages.published()
        self._deps.checkpoint("job-published")
        return self._result(JobState.PUBLISHED, None, path)

    def _attempt(self, what: str, action: Callable[[], _T], path: Path | None = None,
                 area: FaultArea | None = None) -> _T:
        """Run one step of conversion; a failure falls back to publishing the original,
        unless storage (``path`` in ``area``, when the step writes one) or the source
        explains it."""
        try:
            return action()
        except ENDS_THE_ATTEMPT:
            raise
        except Exception as exc:
            storage = storage_error_in(exc, action=f"complete {what}", path=path or self._source,
                                       area=area)
            if storage is not None:
                raise storage from exc
            self._input.check()  # a source that changed or left explains any failure
            raise self._fall_back(what, exc) from exc

    def _fall_back(self, what: str, exc: Exception) -> _ConversionFailed:
        if isinstance(exc, FAILS_ON_PURPOSE):
            _LOG.debug("%s/%s: %s failed", self._model, self._version, what, exc_info=exc)
        else:
            self._internal_error(logging.WARNING,
                                 f"{what} failed unexpectedly; publishing the original", exc)
        return _ConversionFailed(f"{what} failed: {type(exc).__name__}: {_gist(exc)}")

    def _internal_error(self, level: int, what: str, exc: Exception) -> None:
        """Log a bug (ours or a library's) with its traceback and count it."""
        _LOG.log(level, "%s/%s: %s (a bug: please report it with this log)", self._model,
                 self._version, what, exc_info=exc)
        self._deps.observer.internal_error(self._model, self._version, self._stages.state)

    # -- states --------------------------------------------------------------------------

    def _enter(self, state: JobState) -> None:
        self._claim.check()  # a lease found lost while building: stop at the next stage
        self._stages.enter(state)

    def _end(self, state: JobState, reason: str, retry_after: float | None = None) -> JobResult:
        self._stages.end(state, reason, retry_after)
        return self._result(state, reason, None)

    def _result(self, state: JobState, reason: str | None, path: Path | None) -> JobResult:
        journal = self._deps.journal
        job = journal.get(self._model, self._version)
        replay = self._replay
        result = JobResult(
            model=self._model,
            version=self._version,
            state=state,
            reason=reason,
            flavour=job.flavour if job else None,
            flavour_reason=job.flavour_reason if job else None,
            converted_as=job.converted_as if job else None,
            published_path=path,
            replay_origin=replay.origin if replay else None,
            replay_inputs=len(replay.inputs) if replay else 0,
            warmup_records=self._warmup_records,
            engines_kept=self._engines_kept,
            engines=self._engines,
            verification=self._verification,
            stage_seconds=MappingProxyType(journal.stage_timings(self._model, self._version)),
            origin=self._origin,
        )
        self._deps.observer.job_finished(result)
        return result


def _gist(exc: BaseException) -> str:
    """The message's first line, and its last one (where TF and subprocesses put the cause)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = " ... ".join(lines[:1] + lines[-1:]) if len(lines) > 1 else "".join(lines)
    return text[:1500]
