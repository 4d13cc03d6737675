"""The admin gRPC server: SidecarAdmin, health checking, reflection, TLS, graceful stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sidecar.admin.backend import AdminBackend
from sidecar.admin.errors import AdminSettingsError
from sidecar.admin.interceptors import (
    BearerTokenInterceptor,
    ReadinessInterceptor,
    StatusInterceptor,
)
from sidecar.admin.servicer import SERVICE_NAME, SidecarAdminServicer
from sidecar.admin.settings import AdminSettings
from tftrt.sidecar.admin.v1 import admin_pb2, admin_pb2_grpc

_LOG = logging.getLogger("sidecar.admin")

_READY_POLL_SECONDS = 0.2
_COMPONENT_POLL_SECONDS = 0.5


class AdminServer:
    """The admin API server. :meth:`start` binds and serves; :meth:`stop` drains and ends.

    Health is NOT_SERVING (overall and for SidecarAdmin) until the backend says its
    state is loaded, and again from the moment :meth:`stop` is called. Each of
    ``components`` (health service name -> "is it up?") gets its own health status,
    polled every half second once the backend is ready (e.g. the tap's process,
    which is restarted when it dies).
    """

    def __init__(self, settings: AdminSettings, backend: AdminBackend,
                 components: Mapping[str, Callable[[], bool]] | None = None) -> None:
        self._settings = settings
        self._backend = backend
        self._components = dict(components or {})
        self._serving = threading.Event()
        self._stopping = threading.Event()
        self._health = health.HealthServicer(
            experimental_non_blocking=True,
            experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=1),
        )
        interceptors: list[grpc.ServerInterceptor] = [StatusInterceptor()]
        if settings.token is not None:
            interceptors.append(BearerTokenInterceptor(settings.token, [health.SERVICE_NAME]))
        interceptors.append(ReadinessInterceptor([SERVICE_NAME], self._serving.is_set))
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.max_workers,
                                       thread_name_prefix="admin"),
            interceptors=interceptors,
            # Without this a second process could bind the same port and take half the calls.
            options=[("grpc.so_reuseport", 0)],
        )
        admin_pb2_grpc.add_SidecarAdminServicer_to_server(SidecarAdminServicer(backend),
                                                          self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(self.service_names, self._server)
        for name in ("", SERVICE_NAME, *self._components):
            self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self._port: int | None = None
        self._watcher: threading.Thread | None = None

    @property
    def service_names(self) -> tuple[str, ...]:
        """The services this server offers (as reflection lists them)."""
        return (
            admin_pb2.DESCRIPTOR.services_by_name["SidecarAdmin"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        )

    @property
    def port(self) -> int:
        """The bound port (meaningful after :meth:`start`)."""
        if self._port is None:
            raise AdminSettingsError(field="AdminSettings.listen",
                                     value=str(self._settings.listen),
                                     source="admin server", problem="is not bound yet",
                                     fix="call start() first")
        return self._port

    @property
    def serving(self) -> bool:
        """Whether the backend is ready and the server is not stopping."""
        return self._serving.is_set()

    def start(self) -> None:
        """Bind the listen address and start serving (health NOT_SERVING until ready)."""
        credentials = self._settings.server_credentials()
        listen = str(self._settings.listen)
        try:
            if credentials is None:
                port = self._server.add_insecure_port(listen)
            else:
                port = self._server.add_secure_port(listen, credentials)
        except RuntimeError as exc:
            port = 0
            _LOG.debug("binding %s failed: %s", listen, exc)
        if port == 0:
            raise AdminSettingsError(field="AdminSettings.listen", value=listen,
                                     source="admin server", problem="cannot be listened on",
                                     fix="choose a free port on an address of this host")
        self._port = port
        self._server.start()
        self._watcher = threading.Thread(target=self._await_ready, name="admin-ready",
                                         daemon=True)
        self._watcher.start()
        _LOG.info("admin API on %s (%s%s)", listen, "TLS" if credentials else "plaintext",
                  ", bearer token" if self._settings.token else "")

    def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, refuse new calls, let running ones finish within ``grace``
        seconds (default: the settings' ``grace_seconds``), then end."""
        self._stopping.set()
        self._serving.clear()
        self._health.enter_graceful_shutdown()
        wait = self._settings.grace_seconds if grace is None else grace
        self._server.stop(wait).wait()
        if self._watcher is not None:
            self._watcher.join()

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server ended (or ``timeout``); True if it ended."""
        timed_out = self._server.wait_for_termination(timeout)
        return not timed_out

    def _await_ready(self) -> None:
        while not self._stopping.is_set():
            if self._backend.wait_ready(_READY_POLL_SECONDS):
                if self._stopping.is_set():
                    return
                self._serving.set()
                for name in ("", SERVICE_NAME):
                    self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
                _LOG.info("admin API serving")
                self._report_components()
                return

    def _report_components(self) -> None:
        reported: dict[str, bool] = {}
        while self._components and not self._stopping.wait(_COMPONENT_POLL_SECONDS):
            for name, is_up in self._components.items():
                up = is_up()
                if reported.get(name) != up and not self._stopping.is_set():
                    reported[name] = up
                    self._health.set(name, health_pb2.HealthCheckResponse.SERVING if up
                                     else health_pb2.HealthCheckResponse.NOT_SERVING)


def start_admin_server(settings: AdminSettings, backend: AdminBackend) -> AdminServer:
    """Build and start an :class:`AdminServer`; stop it with ``stop(grace)``."""
    server = AdminServer(settings, backend)
    server.start()
    return server
