"""What runs beside the pipeline in `tftrt-sidecar run`, built from the settings:
the shape store (always: jobs replay its shapes), the tap (Envoy in front of TF Serving
and the shape recorder it mirrors to), the metrics endpoint and the admin API when their
addresses are set."""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Final

from prometheus_client import CollectorRegistry

from sidecar.admin.backend import ConversionRequest
from sidecar.admin.server import AdminServer
from sidecar.admin.settings import AdminSettings
from sidecar.admin.sidecar_backend import BackendDependencies, SidecarAdminBackend
from sidecar.config import Settings
from sidecar.envoy.binary import EnvoyBinary
from sidecar.envoy.from_settings import envoy_settings
from sidecar.envoy.governor import MirrorGovernor
from sidecar.envoy.process import EnvoyProcess
from sidecar.envoy.runtime import EnvoyAdmin, MirrorShare
from sidecar.errors import ConfigError
from sidecar.fanout import fan_out
from sidecar.faults import FaultArea, FaultBoard
from sidecar.jobs import JobObserver, LoggingJobObserver
from sidecar.metrics import BuildInfo, MetricsServer, ScrapeSources, SidecarMetrics
from sidecar.publish.published import PublishedModels
from sidecar.rebuilds import CoverageRebuilds
from sidecar.service_components import BackgroundComponent, RequestedJob, ServiceComponents
from sidecar.shapes import ShapeStore, ShapeStoreSettings
from sidecar.state import JobJournal
from sidecar.state.controls import ModelControls
from sidecar.tap.process import RecorderProcess
from sidecar.tap.settings import RecorderSettings, RestRecording
from sidecar.tap.stats import TapObserver


class _ClosesOnStop:
    """Closes a resource when the service stops."""

    def __init__(self, close: Callable[[], None]) -> None:
        self._close = close

    def start(self) -> None:
        """Nothing to start: the resource is open already."""

    def stop(self) -> None:
        """Close the resource."""
        self._close()


TAP_HEALTH_SERVICE: Final = "tftrt.sidecar.Tap"
"""The admin API's health service name for the tap: SERVING while its process is up."""


def _submitter(requests: Any) -> Callable[[ConversionRequest], Future[Any]]:
    def submit(request: ConversionRequest) -> Future[Any]:
        future: Future[Any] = Future()
        requests.put(RequestedJob(request.model, request.version, request.policy,
                                  request.restart, request.reason, future))
        return future

    return submit


def _admin_settings(settings: Settings, listen: str) -> AdminSettings:
    token = None
    if settings.admin_token_file is not None:
        try:
            token = settings.admin_token_file.read_text().strip()
        except OSError as error:
            raise ConfigError(field="admin_token_file", value=settings.admin_token_file,
                              source="settings", problem=f"cannot be read ({error})",
                              fix="point it at a readable file holding the token") from error
    return AdminSettings(
        listen=listen, token=token, tls_cert_file=settings.admin_tls_cert_file,
        tls_key_file=settings.admin_tls_key_file,
        tls_client_ca_file=settings.admin_tls_client_ca_file,
        grace_seconds=settings.shutdown_grace_seconds)


def _tap_components(settings: Settings, observer: TapObserver | None,
                    clock: Callable[[], float]
                    ) -> tuple[list[BackgroundComponent], Callable[[], bool]]:
    """The recorder in its own process (conversions here would take the GIL from it),
    unless Envoy runs in a container of its own Envoy in front of TF Serving, and the
    governor of the share Envoy mirrors; with the health check of the first two."""
    if settings.upstream is None:
        raise ConfigError(field="upstream", value=None, source="settings",
                          problem="is empty while tap_listen is set",
                          fix="set upstream to TF Serving's gRPC address, e.g. "
                              "127.0.0.1:8600, or unset tap_listen")
    rest = None if settings.rest_listen is None else RestRecording(
        RecorderSettings(listen=settings.rest_recorder_listen), settings.serving_base)
    proxy = envoy_settings(settings)
    recorder = RecorderProcess(RecorderSettings(listen=settings.recorder_listen),
                               settings.state_dir, observer=observer, rest=rest, clock=clock,
                               share=MirrorShare(proxy.admin, proxy.mirror_fraction))
    governor = MirrorGovernor(EnvoyAdmin(proxy.admin), proxy.mirror_fraction,
                              settings.mirror_budget_per_second)
    if not settings.run_envoy:
        return [recorder, governor], lambda: recorder.serving
    envoy = EnvoyProcess(proxy, EnvoyBinary.locate(), Path(tempfile.mkdtemp(prefix="envoy-")))
    return [recorder, envoy, governor], lambda: recorder.serving and envoy.serving


def build_components(settings: Settings, clock: Callable[[], float] = time.time
                     ) -> ServiceComponents:
    """Every component the settings ask for, wired to the same shape store."""
    admin_settings = (None if settings.admin_listen is None
                      else _admin_settings(settings, settings.admin_listen))
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = ShapeStore(settings.state_dir, ShapeStoreSettings(), clock)
    # A second connection to the WAL journal, for readers on server threads.
    journal = JobJournal.open(settings.state_dir, clock=clock)
    published = PublishedModels(settings.serving_base)
    controls = ModelControls.open(settings.state_dir)
    background: list[BackgroundComponent] = []
    faults = FaultBoard()
    # Storage faults have their own health services: the overall status (the kubelet's
    # probe) stays SERVING, since restarting the sidecar would cut the tap and fix nothing.
    health: dict[str, Callable[[], bool]] = {
        area.health_service: functools.partial(faults.healthy, area) for area in FaultArea}
    observer: JobObserver = LoggingJobObserver()
    metrics: SidecarMetrics | None = None
    if settings.metrics_listen is not None:
        registry = CollectorRegistry()
        metrics = SidecarMetrics(registry, BuildInfo.detect(settings.default_policy.backend),
                                 ScrapeSources(journal=journal, published=published,
                                               engine_cache_dir=settings.engine_cache_dir,
                                               shape_store=store, faults=faults,
                                               incoming_base=settings.incoming_base))
        observer = fan_out([observer, metrics.job_observer])
        background.append(MetricsServer(settings.metrics_listen, registry))
    if settings.tap_listen is not None:
        tap, serving = _tap_components(settings, metrics.tap_observer if metrics else None,
                                       clock)
        background.extend(tap)
        health[TAP_HEALTH_SERVICE] = serving
    parts = ServiceComponents(shape_source=store, observer=observer)
    on_started: Callable[[], None] = parts.on_started
    if admin_settings is not None:
        backend = SidecarAdminBackend(BackendDependencies(
            journal=journal, published=published, controls=controls,
            incoming_base=settings.incoming_base, policy_for=settings.policy_for,
            submit=_submitter(parts.requests), shape_store=store,
            rollback_observer=metrics, serving_lock=parts.serving_lock))
        background.append(AdminServer(admin_settings, backend, health))
        on_started = backend.mark_ready
    def close() -> None:
        store.close()
        journal.close()

    background.append(_ClosesOnStop(close))
    rebuilds = CoverageRebuilds(store, published, settings.incoming_base,
                                parts.job_settings.signature_key)
    return ServiceComponents(
        shape_source=store, observer=observer, background=tuple(background),
        requests=parts.requests, is_paused=controls.is_paused, policy_for=controls.policy_for,
        serving_lock=parts.serving_lock, on_started=on_started, rebuilds=rebuilds,
        faults=faults)
