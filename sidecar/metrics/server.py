"""The ``/metrics`` HTTP endpoint, serving one registry, that can be stopped."""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from sidecar.errors import ConfigError

_LOG = logging.getLogger("sidecar.metrics")


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) as (host, port); raises ConfigError when malformed."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            field="metrics_listen", value=listen, source="metrics settings",
            problem="is not host:port", fix="use e.g. 0.0.0.0:9102 or 127.0.0.1:9102",
        )
    return host.strip("[]"), int(port)


class MetricsServer:
    """Serves ``registry`` at ``http://<listen>/metrics``; :meth:`start`, then :meth:`stop`."""

    def __init__(self, listen: str, registry: CollectorRegistry) -> None:
        self._host, self._requested_port = parse_listen(listen)
        self._registry = registry
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the requested one, or the one picked for port 0)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_port)

    def start(self) -> None:
        """Bind and serve on a background thread."""
        try:
            self._server, self._thread = start_http_server(
                self._requested_port, addr=self._host, registry=self._registry
            )
        except OSError as exc:
            raise ConfigError(
                field="metrics_listen", value=f"{self._host}:{self._requested_port}",
                source="metrics settings", problem=f"cannot be listened on ({exc.strerror})",
                fix="choose a free port on an address of this host",
            ) from exc
        _LOG.info("metrics on http://%s:%d/metrics", self._host, self.port)

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None


def start_metrics_server(listen: str, registry: CollectorRegistry) -> MetricsServer:
    """Start serving ``registry`` at ``http://<listen>/metrics``; stop it with ``stop()``."""
    server = MetricsServer(listen, registry)
    server.start()
    return server
