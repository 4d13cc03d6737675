"""The real admin backend: answers from the journal, the serving base and the shape store,
and queues conversions through the service's :data:`~sidecar.admin.backend.ConversionSubmitter`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sidecar.admin import validation
from sidecar.admin.backend import (
    ConversionRequest,
    ConversionSubmitter,
    LoopCall,
    RollbackObserver,
)
from sidecar.admin.errors import (
    AlreadyExistsError,
    ConversionFailedError,
    NotFoundError,
    OperationCancelledError,
    PreconditionError,
)
from sidecar.admin.operations import OperationRecord, OperationRegistry
from sidecar.admin.views import (
    CoverageView,
    ModelSummaryView,
    ModelView,
    OperationView,
    PolicyView,
    RollBackView,
    ShapeCountView,
    ShapeStatisticsView,
    SignatureShapesView,
    VersionView,
)
from sidecar.config.overrides import PolicyOverrides, PolicySource
from sidecar.fleet.actions import FleetRollbacks
from sidecar.publish import RolledBack, newest_to_roll_back, roll_back_newest
from sidecar.publish.published import PublishedModels
from sidecar.shapes import RecordedShapes
from sidecar.state import Job, JobJournal, JobState, newest_build
from sidecar.state.controls import Controls, ModelControl
from sidecar.tfserving import numbering
from sidecar.watch.listing import (
    Refusal,
    incoming_version_dir,
    read_incoming,
    version_refusal,
)

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendDependencies:
    """Everything :class:`SidecarAdminBackend` reads and calls, passed in."""

    journal: JobJournal
    """The job journal (states, reasons, timings)."""
    published: PublishedModels
    """The serving base's versions, engines and prebuilt shapes."""
    controls: Controls
    """Persisted pauses and policy overrides (this pod's, or the fleet's in its store)."""
    incoming_base: Path
    """Where raw versions land, as ``<model>/<version>/``."""
    policy_for: PolicySource
    """The configured policy of a model (``Settings.policy_for``)."""
    submit: ConversionSubmitter
    """Queues a conversion on the service's loop."""
    on_loop: LoopCall
    """Runs a rollback on the service's loop, the serving base's one writer."""
    shape_store: RecordedShapes | None = None
    """Recorded request shapes; None when no tap runs."""
    rollback_observer: RollbackObserver | None = None
    """Told about rollbacks (metrics)."""
    clock: Callable[[], float] = time.time
    """Seconds since the epoch."""
    fleet_rollbacks: FleetRollbacks | None = None
    """The fleet's rollbacks (a rollback is recorded there first, for every replica); None
    for a single pod."""


class SidecarAdminBackend:
    """The :class:`~sidecar.admin.backend.AdminBackend` of a running sidecar.

    Not ready until :meth:`mark_ready` (call it once the service has recovered its state).
    """

    def __init__(self, deps: BackendDependencies) -> None:
        self._deps = deps
        self._ready = threading.Event()
        self._operations = OperationRegistry()

    def mark_ready(self) -> None:
        """The state is loaded: the admin API may serve."""
        self._ready.set()

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for :meth:`mark_ready`."""
        return self._ready.wait(timeout)

    # -- models --------------------------------------------------------------------------

    def list_models(self) -> list[ModelSummaryView]:
        """Every model in the journal, the serving base or the controls."""
        deps = self._deps
        by_state: dict[str, dict[str, int]] = {}
        for job in deps.journal.jobs():
            counts = by_state.setdefault(job.model, {})
            counts[job.state.value] = counts.get(job.state.value, 0) + 1
        names = sorted(set(by_state) | self._known_models())
        return [
            ModelSummaryView(
                name=name,
                serving_versions=tuple(deps.published.versions(name)),
                versions_by_state=by_state.get(name, {}),
                paused=deps.controls.is_paused(name),
            )
            for name in names
        ]

    def refused_directories(self) -> list[Refusal]:
        """Incoming directories that look like a model or a version but are not served."""
        return list(read_incoming(self._deps.incoming_base).refused)

    def get_model(self, model: str) -> ModelView:
        """One model with every version the journal or the serving base knows."""
        validation.model_name(model)
        deps = self._deps
        jobs = {job.version: job for job in deps.journal.jobs(model=model)}
        serving = set(deps.published.versions(model))
        if not jobs and not serving and model not in self._known_models():
            raise NotFoundError(f"no model {model!r}", fix="list the models with ListModels")
        control = deps.controls.get(model)
        numbers = sorted(set(jobs) | serving, reverse=True)
        versions = tuple(self._version_view(model, version) for version in numbers)
        return ModelView(
            name=model,
            paused=control.paused,
            policy=control.overrides.apply(deps.policy_for(model)),
            overrides=control.overrides,
            versions=versions,
            coverage=tuple(self._coverage(model)),
        )

    def _version_view(self, model: str, version: int) -> VersionView:
        deps = self._deps
        job = deps.journal.get(model, version)
        published = deps.published.version(model, version)
        timings = deps.journal.stage_timings(model, version) if job else {}
        served_first = deps.journal.served_first(model, version) if job else None
        return VersionView(
            version=version,
            state=job.state.value if job else "",
            reason=(job.reason or "") if job else "",
            flavour=job.flavour.value if job and job.flavour else "",
            flavour_reason=(job.flavour_reason or "") if job else "",
            attempts=job.attempts if job else 0,
            created_at=job.created_at if job else 0.0,
            updated_at=job.updated_at if job else 0.0,
            in_serving=published is not None,
            stage_timings=tuple((state.value, seconds) for state, seconds in timings.items()),
            engines=published.engines if published else (),
            prebuilt=published.prebuilt if published else (),
            backend=published.backend if published else "",
            backend_reason=published.backend_reason if published else "",
            candidate=published.candidate if published else "",
            candidate_reason=published.candidate_reason if published else "",
            built_by=(job.built_by or "") if job else "",
            installed_from_store=job.installed if job else False,
            device=published.device if published else "",
            accuracy=published.accuracy if published else None,
            converted_as=(job.converted_as or 0) if job else 0,
            takes_over_from=served_first.version if served_first else 0,
        )

    def _coverage(self, model: str) -> list[CoverageView]:
        store = self._deps.shape_store
        if store is None:
            return []
        found = []
        for name, signature in store.signatures():
            if name == model:
                prebuilt = self._deps.published.prebuilt_for(model, signature)
                coverage = store.coverage(model, signature, prebuilt)
                found.append(
                    CoverageView(signature, coverage.covered_requests, coverage.total_requests)
                )
        return found

    # -- conversions ---------------------------------------------------------------------

    def start_conversion(
        self, model: str, version: int, overrides: PolicyOverrides, rebuild: bool
    ) -> OperationView:
        """Check that incoming ``version`` can be built now, then queue the build (which
        one: :func:`_build_to_run`)."""
        deps = self._deps
        validation.model_dir(deps.incoming_base, model)
        validation.incoming_version(version)
        refused = version_refusal(deps.incoming_base, model, version)
        if refused is not None:
            raise PreconditionError(refused.reason, where=str(refused.path))
        if incoming_version_dir(deps.incoming_base, model, version) is None:
            raise NotFoundError(
                f"model {model!r} has no version {version} in the incoming base",
                where=str(deps.incoming_base / model), fix="land the SavedModel there first",
            )
        if deps.controls.is_paused(model):
            raise PreconditionError(
                f"model {model!r} is paused", fix="resume it with ResumeModel first"
            )
        served, restart = _build_to_run(deps.journal.jobs(model=model), model, version,
                                        rebuild)
        running = self._operations.unfinished_for(model, served)
        if running is not None:
            raise AlreadyExistsError(
                f"model {model!r} version {version} is already being converted by {running.name}",
                fix="poll that operation with GetOperation",
            )
        policy = deps.controls.policy_for(model, deps.policy_for(model))
        reason = "rebuild requested through the admin API" if rebuild else ""
        effective = overrides.checked_on(policy, "the StartConversion request", "overrides.")
        request = ConversionRequest(model, served, effective, overrides, rebuild,
                                    restart=restart, reason=reason)
        record = self._operations.add(request, deps.submit(request), deps.clock())
        return self._operation_view(record)

    def get_operation(self, name: str) -> OperationView:
        """One operation by name."""
        return self._operation_view(self._record(name))

    def list_operations(self, model: str | None) -> list[OperationView]:
        """Operations, newest first."""
        if model is not None:
            validation.model_name(model)
        return [
            self._operation_view(record)
            for record in self._operations.all()
            if model is None or record.request.model == model
        ]

    def cancel_operation(self, name: str) -> OperationView:
        """Cancel a queued operation."""
        record = self._record(name)
        if not record.future.cancel():
            progress = record.progress
            raise PreconditionError(
                f"{name} is {progress}; only a queued conversion can be cancelled",
                fix="a running conversion finishes (or fails) on its own; poll it",
            )
        return self._operation_view(record)

    def _record(self, name: str) -> OperationRecord:
        validation.operation_name(name)
        record = self._operations.get(name)
        if record is None:
            raise NotFoundError(
                f"no operation {name!r}",
                fix="operations last as long as the sidecar process; list them with "
                "ListOperations, or read the version's state with GetModel",
            )
        return record

    def _operation_view(self, record: OperationRecord) -> OperationView:
        request = record.request
        job = self._deps.journal.get(request.model, request.version)
        progress = record.progress
        failure: BaseException | None = None
        response: VersionView | None = None
        if progress == "done":
            failure = self._failure(record)
            if failure is None:
                response = self._version_view(request.model, request.version)
        return OperationView(
            name=record.name,
            model=request.model,
            version=request.version,
            rebuild=request.rebuild,
            overrides=request.overrides,
            progress=progress,
            state=job.state.value if job else "",
            created_at=record.created_at,
            updated_at=max(job.updated_at, record.created_at) if job else record.created_at,
            failure=failure,
            response=response,
        )

    def _failure(self, record: OperationRecord) -> BaseException | None:
        future = record.future
        if future.cancelled():
            return OperationCancelledError(f"{record.name} was cancelled before it ran")
        raised = future.exception()
        if raised is not None:
            return raised
        job = self._deps.journal.get(record.request.model, record.request.version)
        if job is not None and job.state is JobState.FAILED:
            return ConversionFailedError(job.reason or "the job failed",
                                         where=f"{job.model}/{job.version}")
        return None

    # -- shapes, policy, pause, rollback --------------------------------------------------

    def shape_statistics(self, model: str, limit: int) -> ShapeStatisticsView:
        """The top shape sets of each signature of the model, with coverage."""
        validation.model_name(model)
        store = self._deps.shape_store
        if store is None:
            raise PreconditionError(
                "no shape store: the sidecar runs without its tap", fix="run the tap"
            )
        signatures = [sig for name, sig in store.signatures() if name == model]
        refused = {reason.value: count for reason, count in store.refused_counts(model).items()}
        if not signatures and not refused and model not in self._known_models():
            raise NotFoundError(f"no model {model!r}", fix="list the models with ListModels")
        views = []
        for signature in signatures:
            prebuilt = self._deps.published.prebuilt_for(model, signature)
            top = store.top_shape_sets(model, signature, limit)
            coverage = store.coverage(model, signature, prebuilt)
            views.append(SignatureShapesView(
                signature=signature,
                total_requests=top.total_requests,
                top=tuple(
                    ShapeCountView(entry.shape_set, entry.count, entry.share,
                                   any(p.matches(entry.shape_set) for p in prebuilt))
                    for entry in top.entries
                ),
                coverage=CoverageView(
                    signature, coverage.covered_requests, coverage.total_requests
                ),
            ))
        return ShapeStatisticsView(model, tuple(views), refused)

    def _known_models(self) -> set[str]:
        """Models in the journal, the serving base, the controls or recent traffic."""
        deps = self._deps
        traffic = {m for m, _ in deps.shape_store.signatures()} if deps.shape_store else set()
        return ({job.model for job in deps.journal.jobs()} | set(deps.published.models())
                | set(deps.controls.models()) | traffic)

    def set_policy(self, model: str, overrides: PolicyOverrides, clear: bool) -> PolicyView:
        """Persist overrides (merged, or replacing all with ``clear``)."""
        validation.model_name(model)
        control = self._deps.controls.set_overrides(
            model, overrides, clear=clear, configured=self._deps.policy_for(model))
        effective = control.overrides.apply(self._deps.policy_for(model))
        return PolicyView(model, control.overrides, effective)

    def pause(self, model: str, reason: str) -> ModelControl:
        """Hold back the model's new conversions."""
        validation.model_name(model)
        return self._deps.controls.pause(model, reason)

    def resume(self, model: str) -> ModelControl:
        """Let the model's conversions start again."""
        validation.model_name(model)
        return self._deps.controls.resume(model)

    def roll_back(self, model: str, reason: str) -> RollBackView:
        """Move the newest published version out of view; refuse for the only one. Logged
        with ``reason`` (the operator's, or "no reason given").

        In a fleet it is recorded in the store first, with ``reason``, so every replica
        rolls it back too; when the store refuses, nothing is rolled back here either.

        It runs on the service's loop, between jobs: asked for while a job runs, it waits
        for that job to end."""
        deps = self._deps
        model_dir = validation.model_dir(deps.published.serving_base, model)
        if not deps.published.versions(model):
            raise NotFoundError(f"model {model!r} has no published version",
                                where=str(model_dir), fix="check the model name")
        fleet = deps.fleet_rollbacks
        reason = reason or "no reason given"

        def roll_back() -> RolledBack:
            if fleet is None:
                return roll_back_newest(model_dir)
            recorded = fleet.record(model, newest_to_roll_back(model_dir), reason)
            rolled = roll_back_newest(model_dir)
            fleet.note_moved(recorded, rolled)
            return rolled

        rolled = deps.on_loop(roll_back).result()
        _LOG.warning("rolled back %s/%d through the admin API (%s); %d is served, and the "
                     "rolled-back version is kept at %s", model, rolled.version, reason,
                     rolled.now_serving, rolled.moved_to)
        if deps.rollback_observer is not None:
            deps.rollback_observer.rolled_back(model, rolled.version, rolled.now_serving)
        return RollBackView(model, rolled.version, rolled.now_serving, str(rolled.moved_to))


def _build_to_run(jobs: Iterable[Job], model: str, incoming: int,
                  rebuild: bool) -> tuple[int, bool]:
    """The served number to build for incoming version ``incoming`` of ``model`` (whose
    journal ``jobs`` these are), and whether its job must be restarted first.

    A version never built gets its first build; one that ended failed or skipped is
    restarted when ``rebuild`` is asked; a published one gets a rebuild under its next
    served number. PreconditionError when it cannot run now.
    """
    job = newest_build(jobs, incoming)
    if job is None:
        return numbering.served_version(incoming), False
    where = f"{model}/{job.version}"
    if job.state is JobState.DISCOVERED:
        return job.version, False
    if job.state.is_intermediate:
        raise PreconditionError(
            f"model {model!r} {numbering.describe(job.version)} is {job.state.value} now",
            where=where, fix="wait for its job to finish",
        )
    if not rebuild:
        ended = ("is published; published versions are final"
                 if job.state is JobState.PUBLISHED else
                 f"ended {job.state.value} ({job.reason})")
        raise PreconditionError(
            f"model {model!r} {numbering.describe(job.version)} {ended}",
            where=where, fix="ask for a rebuild to build it again (a published version "
            "is rebuilt under its next served number)",
        )
    if job.state is JobState.PUBLISHED:
        return numbering.next_rebuild(job.version), False
    return job.version, True
