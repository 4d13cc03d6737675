"""The ``/metrics`` HTTP endpoint, serving one registry, that can be stopped.

Built to answer under load: a thread per connection, a listen backlog of
`LISTEN_BACKLOG` (the standard library's default of 5 dropped connections when a
burst of scrapes arrived together), and one rendering shared by concurrent scrapes
(`SharedRendering`).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry

from sidecar.base.errors import ConfigError
from sidecar.config.address import Address
from sidecar.metrics.rendering import SharedRendering

_LOG = logging.getLogger("sidecar.metrics")

LISTEN_BACKLOG = 1024
"""Connections the kernel queues before the server accepts them (capped by the host's
``net.core.somaxconn``, 4096 on current kernels)."""

_PATHS = ("/metrics", "/")


class _ScrapeServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stuck scraper never holds the process at exit
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily) -> None:
        self.address_family = family
        super().__init__(address, _QuietHandler)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged: one line per scrape would drown the sidecar's log."""


def _metrics_app(rendering: SharedRendering) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") not in _PATHS:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: scrape /metrics\n"]
        body, content_type = rendering.render(environ.get("HTTP_ACCEPT", ""))
        start_response("200 OK", [("Content-Type", content_type),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return app


class MetricsServer:
    """Serves ``registry`` at ``http://<listen>/metrics`` (port 0 picks a free port: see
    :attr:`port`); :meth:`start`, then :meth:`stop`."""

    def __init__(self, listen: str, registry: CollectorRegistry) -> None:
        self._address = Address.parse(listen, "metrics_listen", "metrics settings",
                                      free_port=True)
        self._rendering = SharedRendering(registry)
        self._server: _ScrapeServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the requested one, or the one picked for port 0)."""
        if self._server is None:
            return self._address.port
        return int(self._server.server_port)

    def start(self) -> None:
        """Bind and serve on a background thread."""
        try:
            host, port = self._address.host, self._address.port
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            self._server = _ScrapeServer((host, port), family)
        except OSError as exc:
            raise ConfigError(
                field="metrics_listen", value=str(self._address),
                source="metrics settings",
                problem=f"cannot be listened on ({exc.strerror or exc})",
                fix="choose a free port on an address of this host",
            ) from exc
        self._server.set_app(_metrics_app(self._rendering))
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        daemon=True)
        self._thread.start()
        _LOG.info("metrics on http://%s/metrics",
                  Address(self._address.host, self.port))

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None

