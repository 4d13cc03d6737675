"""How `tftrt-sidecar run` is put together: the one place the service's parts are built.

:func:`build_service` builds, from the validated settings, every part the loop runs
(:class:`ServiceParts`) in two steps. First the features the settings ask for
(:func:`build_features`, :class:`Features`): always the shape store with coverage
rebuilds; the fleet with a store; the metrics endpoint, the tap (Envoy in front of TF
Serving and the shape recorder it mirrors to) and the admin API when their addresses are
set. Then the pipeline around them (:func:`build_parts`): the journal, the publisher, the
watcher, the steps between jobs and the jobs' dependencies.
:class:`~sidecar.service.loop.SidecarService` only runs what it is given.

Each feature is present or absent. Tests build the pipeline alone (``build_parts(settings,
seams)``), or with the feature they test, and replace the :class:`Seams` (the converter,
the step checkpoint, the clocks, the job observer).
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from prometheus_client import CollectorRegistry

from sidecar.admin.server import AdminServer
from sidecar.admin.settings import AdminSettings
from sidecar.admin.sidecar_backend import BackendDependencies, SidecarAdminBackend
from sidecar.base.fanout import fan_out
from sidecar.base.faults import FaultArea, FaultBoard
from sidecar.config import Address, Settings
from sidecar.envoy.binary import EnvoyBinary
from sidecar.envoy.from_settings import envoy_settings
from sidecar.envoy.governor import MirrorGovernor
from sidecar.envoy.process import EnvoyProcess
from sidecar.envoy.runtime import EnvoyAdmin, MirrorShare
from sidecar.fleet import LeaseBook, SharedDirectoryStore
from sidecar.fleet.actions import FleetRollbacks
from sidecar.fleet.operator_records import OperatorRecords
from sidecar.fleet.replica_claim import ReplicaClaim
from sidecar.fleet.shape_contributor import ShapeContributor
from sidecar.fleet.shape_source import FleetShapeSource
from sidecar.jobs import (
    ConverterFactory,
    FleetContext,
    JobDependencies,
    JobObserver,
    JobQueue,
    LoggingJobObserver,
    ShapeSource,
    default_converter_factory,
)
from sidecar.jobs.retry import RetryPolicy
from sidecar.metrics import BuildInfo, MetricsServer, ScrapeSources, SidecarMetrics
from sidecar.publish import Checkpoint, VersionPublisher, no_checkpoint
from sidecar.publish.published import PublishedModels
from sidecar.recorder.process import RecorderProcess
from sidecar.recorder.settings import RecorderSettings, RestRecording
from sidecar.recorder.stats import TapObserver
from sidecar.service.commands import LoopCommands
from sidecar.service.fleet_upkeep import FleetCatchUp, FleetFeature, FleetUpkeep
from sidecar.service.incoming_changes import IncomingChanges
from sidecar.service.rebuilds import CoverageRebuilds
from sidecar.service.serving_upkeep import ServingUpkeep
from sidecar.service.summary import RunSummary
from sidecar.shapes import ShapeStore
from sidecar.state import JobJournal
from sidecar.state.controls import Controls, ModelControls
from sidecar.state.fleet_controls import FleetControls
from sidecar.watch import IncomingWatcher

TAP_HEALTH_SERVICE: Final = "tftrt.sidecar.Tap"
"""The admin API's health service name for the tap: SERVING while its process is up."""

FLEET_HEALTH_SERVICE: Final = "tftrt.sidecar.Fleet"
"""The admin API's health service name for catching up: in a fleet, SERVING once this
replica, after it started, had nothing left to build or install (so a new pod takes traffic
only once it serves what the fleet serves; the pod's readiness probe asks it); always
SERVING in single-pod mode."""


class BackgroundComponent(Protocol):
    """A server that runs beside the pipeline: the tap, the admin API, the metrics endpoint."""

    def start(self) -> None:
        """Start serving (return once it is up)."""
        ...

    def stop(self) -> None:
        """Stop serving and release its resources."""
        ...


@dataclass(frozen=True)
class Seams:
    """What a caller may replace (tests pause at a step, keep a converter's engines, move a
    clock, watch the jobs); the defaults are what `tftrt-sidecar run` runs with."""

    converter_factory: ConverterFactory = default_converter_factory
    """Makes the converter for a model version."""

    checkpoint: Checkpoint = no_checkpoint
    """Called at every named job and publish step (crash tests pause here)."""

    wall_clock: Callable[[], float] = time.time
    """Seconds since the epoch, for the journal and the shape store."""

    monotonic: Callable[[], float] = time.monotonic
    """Monotonic seconds, for settling, retries, the fleet's waits and durations."""

    observer: JobObserver = field(default_factory=LoggingJobObserver)
    """Told about every job stage and result (the metrics, when on, are told too)."""


@dataclass(frozen=True)
class Recordings:
    """Recorded request traffic (this pod's shape store, in a fleet the fleet's)."""

    shapes: ShapeSource
    """The shapes and sampled requests jobs replay."""

    rebuilds: CoverageRebuilds
    """Queues rebuilds when traffic moves to shapes the served version was not built for."""


@dataclass(frozen=True)
class Features:
    """What runs beside the pipeline, each present or absent (None); and the fault board,
    the command queue and the controls they share with it."""

    faults: FaultBoard = field(default_factory=FaultBoard)
    """Storage faults the service is riding out (admin health and metrics read them)."""

    commands: LoopCommands = field(default_factory=LoopCommands)
    """Conversions and rollbacks asked for from outside (the admin API), run on the loop's
    thread before watched jobs."""

    controls: Controls | None = None
    """Pauses and policy overrides (in a fleet, the fleet's); None: this pod's own, read from
    its state directory."""

    recordings: Recordings | None = None
    """Recorded traffic for replays and coverage rebuilds; None: jobs replay the model's
    own warmup file or the default batch sizes, and nothing is rebuilt for coverage."""

    fleet: FleetFeature | None = None
    """This replica's place in a fleet; None: single-pod mode."""

    metrics: SidecarMetrics | None = None
    """The metrics endpoint's collectors, told about every job beside the seams' observer."""

    admin: SidecarAdminBackend | None = None
    """The admin API's backend, told when start-up recovery is done (it then reports
    ready)."""

    background: tuple[BackgroundComponent, ...] = ()
    """Servers started before the loop and stopped after it, in reverse."""


@dataclass(frozen=True)
class ServiceParts:
    """Everything the service loop runs, built; the loop owns them (it closes the journal)."""

    journal: JobJournal
    """The job journal, written by the loop's thread alone."""

    publisher: VersionPublisher
    """The serving base's one writer."""

    summary: RunSummary
    """What the service has done (the steps between jobs add withdrawals and retirements)."""

    watcher: IncomingWatcher
    """Scans the incoming base for versions that settled or vanished."""

    changes: IncomingChanges
    """Acts on the watcher's events."""

    upkeep: ServingUpkeep
    """Withdrawal, restoring, retention and TF Serving's model config."""

    queue: JobQueue
    """Which journal job runs next."""

    jobs: JobDependencies
    """What every job runs with (its retry policy also paces the loop after a failed step)."""

    controls: Controls
    """Whether a model's new versions wait, and the policy it runs with."""

    commands: LoopCommands
    """Work asked for from outside, run between jobs."""

    faults: FaultBoard
    """Storage faults the service is riding out."""

    rebuilds: CoverageRebuilds | None
    """Coverage rebuilds; None without recorded traffic."""

    fleet: FleetUpkeep | None
    """What the loop does for the fleet between jobs; None: single-pod mode."""

    admin: SidecarAdminBackend | None
    """The admin API's backend, marked ready after start-up; None without an admin API."""

    background: tuple[BackgroundComponent, ...]
    """Servers started before the loop and stopped after it, in reverse."""


def build_service(settings: Settings, seams: Seams = Seams()) -> ServiceParts:
    """Every part `tftrt-sidecar run` runs: the features the settings ask for and the
    pipeline around them."""
    return build_parts(settings, seams, build_features(settings, seams))


def build_features(settings: Settings, seams: Seams = Seams()) -> Features:
    """Every feature the settings ask for, wired to the same shape store."""
    clock = seams.wall_clock
    admin_settings = (None if settings.admin.listen is None
                      else _admin_settings(settings, settings.admin.listen))
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    store = ShapeStore(settings.paths.state_dir, settings.shape_store, clock)
    # A second connection to the WAL journal, for readers on server threads.
    journal = JobJournal.open(settings.paths.state_dir, clock=clock)
    published = PublishedModels(settings.paths.serving_base)
    faults = FaultBoard()
    commands = LoopCommands()
    background: list[BackgroundComponent] = []
    fleet: FleetFeature | None = None
    controls: Controls
    shapes: ShapeStore | FleetShapeSource = store
    fleet_shapes: tuple[FleetShapeSource, ShapeContributor] | None = None
    if settings.fleet.store is None:
        controls = ModelControls.open(settings.paths.state_dir)
    else:
        context, claim = _fleet_context(settings, faults)
        # First, so it is claimed before anything else writes to the store, released last.
        background.append(claim)
        # After _fleet_context, which checks that the directory is a fleet store.
        records = OperatorRecords(settings.fleet.store, settings.fleet.replica_id)
        controls = FleetControls(records)
        fleet = FleetFeature(context, FleetRollbacks(records, settings.paths.serving_base))
        # Builds, replays and coverage read the fleet's traffic; this replica adds its own.
        fleet_shapes = (
            FleetShapeSource(context.store, store, settings.fleet.shape_share_seconds,
                             wall_clock=clock),
            ShapeContributor(context.store, store, settings.fleet.shape_share_seconds,
                             wall_clock=clock))
        shapes = fleet_shapes[0]
    # Storage faults have their own health services: the overall status (the kubelet's
    # probe) stays SERVING, since restarting the sidecar would cut the tap and fix nothing.
    health: dict[str, Callable[[], bool]] = {
        area.health_service: functools.partial(faults.healthy, area) for area in FaultArea}
    health[FLEET_HEALTH_SERVICE] = _single_pod if fleet is None else fleet.caught_up.is_set
    metrics: SidecarMetrics | None = None
    if settings.metrics.listen is not None:
        registry = CollectorRegistry()
        metrics = SidecarMetrics(registry, BuildInfo.detect(settings.default_policy.backend),
                                 ScrapeSources(journal=journal, published=published,
                                               engine_cache_dir=settings.paths.engine_cache_dir,
                                               shape_store=shapes, faults=faults,
                                               incoming_base=settings.paths.incoming_base,
                                               fleet_shapes=fleet_shapes,
                                               fleet_store=None if fleet is None
                                               else fleet.context.store))
        background.append(MetricsServer(settings.metrics.listen, registry))
    if settings.tap.tap_listen is not None:
        tap, serving = _tap_components(settings, metrics.tap_observer if metrics else None,
                                       clock)
        background.extend(tap)
        health[TAP_HEALTH_SERVICE] = serving
    admin: SidecarAdminBackend | None = None
    if admin_settings is not None:
        admin = SidecarAdminBackend(BackendDependencies(
            journal=journal, published=published, controls=controls,
            incoming_base=settings.paths.incoming_base, policy_for=settings.policy_for,
            submit=commands.convert, on_loop=commands.call, shape_store=shapes,
            rollback_observer=metrics,
            fleet_rollbacks=None if fleet is None else fleet.rollbacks))
        background.append(AdminServer(admin_settings, admin, health))

    def close() -> None:
        store.close()
        journal.close()

    background.append(_ClosesOnStop(close))
    if fleet_shapes is not None:
        # Components stop in reverse: its last write comes before the shape store closes.
        background.append(fleet_shapes[1])
    rebuilds = CoverageRebuilds(shapes, published, settings.paths.incoming_base,
                                settings.job.signature_key)
    return Features(faults=faults, commands=commands, controls=controls,
                    recordings=Recordings(shapes, rebuilds), fleet=fleet, metrics=metrics,
                    admin=admin, background=tuple(background))


def build_parts(settings: Settings, seams: Seams = Seams(), features: Features | None = None
                ) -> ServiceParts:
    """The pipeline's parts around ``features`` (None: the pipeline alone, single-pod, without
    recorded traffic or servers beside it, with a fault board and command queue of its own)."""
    features = Features() if features is None else features
    journal = JobJournal.open(settings.paths.state_dir, clock=seams.wall_clock)
    publisher = VersionPublisher(settings.paths.serving_base, checkpoint=seams.checkpoint)
    summary = RunSummary()
    upkeep = ServingUpkeep(
        settings, publisher,
        on_retired=lambda model, version: summary.retired.append((model, version)),
        served_first=journal.originals_served_first)
    observer = (seams.observer if features.metrics is None
                else fan_out([seams.observer, features.metrics.job_observer]))
    recordings, fleet = features.recordings, features.fleet
    jobs = JobDependencies(
        journal=journal, publisher=publisher, incoming_base=settings.paths.incoming_base,
        engine_cache_dir=settings.paths.engine_cache_dir, settings=settings.job,
        converter_factory=seams.converter_factory,
        shape_source=None if recordings is None else recordings.shapes, observer=observer,
        checkpoint=seams.checkpoint, clock=seams.monotonic,
        retry=RetryPolicy(settings.retry.backoff_seconds, settings.retry.backoff_max_seconds))
    fleet_upkeep: FleetUpkeep | None = None
    if fleet is not None:
        jobs = dataclasses.replace(jobs, fleet=fleet.context,
                                   is_rolled_back=fleet.rollbacks.is_rolled_back)
        catch_up = FleetCatchUp(
            fleet.context, journal, settings.paths.incoming_base,
            interval_seconds=max(settings.watch.rescan_interval_seconds, 5.0),
            is_rolled_back=fleet.rollbacks.is_rolled_back, clock=seams.monotonic)
        fleet_upkeep = FleetUpkeep(catch_up, fleet.rollbacks, fleet.caught_up,
                                   write_model_config=upkeep.write_model_config,
                                   clock=seams.monotonic)
    return ServiceParts(
        journal=journal, publisher=publisher, summary=summary,
        watcher=IncomingWatcher(
            settings.paths.incoming_base, settle_seconds=settings.watch.settle_seconds,
            marker_file=settings.watch.marker_file, clock=seams.monotonic,
            is_served=publisher.serves),
        changes=IncomingChanges(journal, publisher, upkeep, summary.withdrawn,
                                incoming_base=settings.paths.incoming_base),
        upkeep=upkeep, queue=JobQueue(journal), jobs=jobs,
        controls=(ModelControls.open(settings.paths.state_dir) if features.controls is None
                  else features.controls),
        commands=features.commands, faults=features.faults,
        rebuilds=None if recordings is None else recordings.rebuilds, fleet=fleet_upkeep,
        admin=features.admin, background=features.background)


def _single_pod() -> bool:
    """A single pod has no fleet to catch up with."""
    return True


def _fleet_context(settings: Settings, faults: FaultBoard) -> tuple[FleetContext, ReplicaClaim]:
    """The fleet store at ``settings.fleet.store`` with this replica's lease book, for this
    replica's TensorFlow version and device; and its claim on its id there (reporting the
    store's faults to ``faults``)."""
    assert settings.fleet.store is not None
    import tensorflow as tf  # only a fleet replica needs the version (run loads it anyway)

    from converter import detect_build_device

    book = LeaseBook(settings.fleet.replica_id, settings.fleet.lease_seconds)
    store = SharedDirectoryStore(settings.fleet.store, book)
    return (FleetContext(store, tf.__version__, detect_build_device().slug),
            ReplicaClaim(store.store_root, book, faults))


class _ClosesOnStop:
    """Closes a resource when the service stops."""

    def __init__(self, close: Callable[[], None]) -> None:
        self._close = close

    def start(self) -> None:
        """Nothing to start: the resource is open already."""

    def stop(self) -> None:
        """Close the resource."""
        self._close()


def _admin_settings(settings: Settings, listen: Address) -> AdminSettings:
    return AdminSettings(
        listen=listen, token=settings.admin.token, tls_cert_file=settings.admin.tls_cert_file,
        tls_key_file=settings.admin.tls_key_file,
        tls_client_ca_file=settings.admin.tls_client_ca_file,
        grace_seconds=settings.admin.shutdown_grace_seconds)


def _tap_components(settings: Settings, observer: TapObserver | None,
                    clock: Callable[[], float]
                    ) -> tuple[list[BackgroundComponent], Callable[[], bool]]:
    """The recorder in its own process (conversions here would take the GIL from it),
    unless Envoy runs in a container of its own Envoy in front of TF Serving, and the
    governor of the share Envoy mirrors; with the health check of the first two."""
    rest = None if settings.tap.rest_listen is None else RestRecording(
        RecorderSettings(listen=settings.tap.rest_recorder_listen), settings.paths.serving_base)
    proxy = envoy_settings(settings)
    recorder = RecorderProcess(RecorderSettings(listen=settings.tap.recorder_listen,
                                                shape_store=settings.shape_store),
                               settings.paths.state_dir, observer=observer, rest=rest,
                               clock=clock,
                               share=MirrorShare(proxy.admin, proxy.mirror_fraction))
    governor = MirrorGovernor(EnvoyAdmin(proxy.admin), proxy.mirror_fraction,
                              settings.tap.mirror_budget_per_second,
                              settings.tap.mirror_budget_bytes_per_second)
    if not settings.tap.run_envoy:
        return [recorder, governor], lambda: recorder.serving
    envoy = EnvoyProcess(proxy, EnvoyBinary.locate(), Path(tempfile.mkdtemp(prefix="envoy-")))
    return [recorder, envoy, governor], lambda: recorder.serving and envoy.serving
