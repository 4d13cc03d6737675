"""How `tftrt-sidecar run` is put together: the parts the service takes
(:class:`ServiceComponents`) and, from the validated settings, the one place they are built
(:func:`build_components`).

Always the shape store (jobs replay its shapes); the tap (Envoy in front of TF Serving and
the shape recorder it mirrors to), the metrics endpoint and the admin API when their
addresses are set. Tests build :class:`ServiceComponents` themselves, with only the parts
they replace.
"""

from __future__ import annotations

import functools
import tempfile
import threading
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
from sidecar.config import Address, ModelPolicy, Settings
from sidecar.envoy.binary import EnvoyBinary
from sidecar.envoy.from_settings import envoy_settings
from sidecar.envoy.governor import MirrorGovernor
from sidecar.envoy.process import EnvoyProcess
from sidecar.envoy.runtime import EnvoyAdmin, MirrorShare
from sidecar.fleet import LeaseBook, SharedDirectoryStore
from sidecar.fleet.actions import AppliedRollback, FleetRollbacks
from sidecar.fleet.operator_records import OperatorRecords
from sidecar.fleet.replica_claim import ReplicaClaim
from sidecar.fleet.shape_contributor import ShapeContributor
from sidecar.fleet.shape_source import FleetShapeSource
from sidecar.jobs import (
    ConverterFactory,
    FleetContext,
    JobObserver,
    JobSettings,
    LoggingJobObserver,
    ShapeSource,
    default_converter_factory,
)
from sidecar.metrics import BuildInfo, MetricsServer, ScrapeSources, SidecarMetrics
from sidecar.publish import Checkpoint, no_checkpoint
from sidecar.publish.published import PublishedModels
from sidecar.recorder.process import RecorderProcess
from sidecar.recorder.settings import RecorderSettings, RestRecording
from sidecar.recorder.stats import TapObserver
from sidecar.service.commands import LoopCommands
from sidecar.service.rebuilds import CoverageRebuilds
from sidecar.shapes import ShapeStore
from sidecar.state import JobJournal
from sidecar.state.controls import Controls, ModelControls
from sidecar.state.fleet_controls import FleetControls

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


def _never_paused(model: str) -> bool:
    return False


def _never_rolled_back(model: str, version: int) -> bool:
    return False


def _as_configured(model: str, configured: ModelPolicy) -> ModelPolicy:
    return configured


def _nothing() -> None:
    return None


def _no_rollbacks() -> list[AppliedRollback]:
    return []


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

    checkpoint: Checkpoint = no_checkpoint
    """Called at every named job and publish step (crash tests pause here)."""

    wall_clock: Callable[[], float] = time.time
    """Seconds since the epoch, for the journal."""

    monotonic: Callable[[], float] = time.monotonic
    """Monotonic seconds, for settling and durations."""

    commands: LoopCommands = field(default_factory=LoopCommands)
    """Conversions and rollbacks asked for from outside (the admin API), run on the loop's
    thread before watched jobs."""

    is_paused: Callable[[str], bool] = _never_paused
    """Whether a model's new versions wait (admin pause)."""

    policy_for: Callable[[str, ModelPolicy], ModelPolicy] = _as_configured
    """The policy a model runs with, given its configured one (admin overrides)."""

    rebuilds: CoverageRebuilds | None = None
    """Queues rebuilds when traffic moves to shapes the served version was not built for."""

    on_started: Callable[[], None] = _nothing
    """Called once start-up recovery is done (the admin API reports ready)."""

    on_caught_up: Callable[[], None] = _nothing
    """Called once, the first time after start-up that no job waits or runs and no version
    is settling (a fleet replica has installed or built what the fleet serves)."""

    faults: FaultBoard = field(default_factory=FaultBoard)
    """Storage faults the service is riding out (admin health and metrics read them)."""

    fleet: FleetContext | None = None
    """The fleet's shared store and this replica's key namespace; None: single-pod mode."""

    is_rolled_back: Callable[[str, int], bool] = _never_rolled_back
    """Whether the fleet rolled a model's served version back (it is never installed)."""

    apply_rollbacks: Callable[[], list[AppliedRollback]] = _no_rollbacks
    """Moves the versions the fleet rolled back out of this replica's view; what it moved
    (:meth:`sidecar.fleet.actions.FleetRollbacks.apply`; the service calls it between jobs)."""


def build_components(settings: Settings, clock: Callable[[], float] = time.time
                     ) -> ServiceComponents:
    """Every component the settings ask for, wired to the same shape store."""
    admin_settings = (None if settings.admin.listen is None
                      else _admin_settings(settings, settings.admin.listen))
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    store = ShapeStore(settings.paths.state_dir, settings.shape_store, clock)
    # A second connection to the WAL journal, for readers on server threads.
    journal = JobJournal.open(settings.paths.state_dir, clock=clock)
    published = PublishedModels(settings.paths.serving_base)
    faults = FaultBoard()
    background: list[BackgroundComponent] = []
    fleet = None
    if settings.fleet.store is not None:
        fleet, claim = _fleet_context(settings, faults)
        # First, so it is claimed before anything else writes to the store, released last.
        background.append(claim)
    controls: Controls
    rollbacks: FleetRollbacks | None = None
    if settings.fleet.store is None:
        controls = ModelControls.open(settings.paths.state_dir)
    else:  # after _fleet_context, which checks that the directory is a fleet store
        records = OperatorRecords(settings.fleet.store, settings.fleet.replica_id)
        controls = FleetControls(records)
        rollbacks = FleetRollbacks(records, settings.paths.serving_base)
    shapes: ShapeStore | FleetShapeSource = store
    fleet_shapes: tuple[FleetShapeSource, ShapeContributor] | None = None
    if fleet is not None:
        # Builds, replays and coverage read the fleet's traffic; this replica adds its own.
        fleet_shapes = (
            FleetShapeSource(fleet.store, store, settings.fleet.shape_share_seconds,
                             wall_clock=clock),
            ShapeContributor(fleet.store, store, settings.fleet.shape_share_seconds,
                             wall_clock=clock))
        shapes = fleet_shapes[0]
    job_settings = settings.job
    commands = LoopCommands()
    # Storage faults have their own health services: the overall status (the kubelet's
    # probe) stays SERVING, since restarting the sidecar would cut the tap and fix nothing.
    health: dict[str, Callable[[], bool]] = {
        area.health_service: functools.partial(faults.healthy, area) for area in FaultArea}
    observer: JobObserver = LoggingJobObserver()
    metrics: SidecarMetrics | None = None
    if settings.metrics.listen is not None:
        registry = CollectorRegistry()
        metrics = SidecarMetrics(registry, BuildInfo.detect(settings.default_policy.backend),
                                 ScrapeSources(journal=journal, published=published,
                                               engine_cache_dir=settings.paths.engine_cache_dir,
                                               shape_store=shapes, faults=faults,
                                               incoming_base=settings.paths.incoming_base,
                                               fleet_shapes=fleet_shapes,
                                               fleet_store=None if fleet is None else fleet.store))
        observer = fan_out([observer, metrics.job_observer])
        background.append(MetricsServer(settings.metrics.listen, registry))
    if settings.tap.tap_listen is not None:
        tap, serving = _tap_components(settings, metrics.tap_observer if metrics else None,
                                       clock)
        background.extend(tap)
        health[TAP_HEALTH_SERVICE] = serving
    caught_up = threading.Event()
    if fleet is None:
        caught_up.set()
    health[FLEET_HEALTH_SERVICE] = caught_up.is_set
    on_started = _nothing
    if admin_settings is not None:
        backend = SidecarAdminBackend(BackendDependencies(
            journal=journal, published=published, controls=controls,
            incoming_base=settings.paths.incoming_base, policy_for=settings.policy_for,
            submit=commands.convert, on_loop=commands.call, shape_store=shapes,
            rollback_observer=metrics, fleet_rollbacks=rollbacks))
        background.append(AdminServer(admin_settings, backend, health))
        on_started = backend.mark_ready

    def close() -> None:
        store.close()
        journal.close()

    background.append(_ClosesOnStop(close))
    if fleet_shapes is not None:
        # Components stop in reverse: its last write comes before the shape store closes.
        background.append(fleet_shapes[1])
    return ServiceComponents(
        shape_source=shapes, observer=observer, background=tuple(background),
        job_settings=job_settings, commands=commands, is_paused=controls.is_paused,
        policy_for=controls.policy_for, on_started=on_started,
        on_caught_up=caught_up.set,
        rebuilds=CoverageRebuilds(shapes, published, settings.paths.incoming_base,
                                  job_settings.signature_key),
        faults=faults, fleet=fleet,
        is_rolled_back=_never_rolled_back if rollbacks is None else rollbacks.is_rolled_back,
        apply_rollbacks=_no_rollbacks if rollbacks is None else rollbacks.apply)


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
