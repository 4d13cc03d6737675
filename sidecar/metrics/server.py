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
from concurrent.futures import Future
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from sidecar.base.errors import ConfigError
from sidecar.config.address import Address

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


class SharedRendering:
    """Renders `registry` in the format a scrape's `Accept` header asks for, sharing each
    rendering in flight among the scrapes that want the same format.

    Scrape-time gauges read the journal, the serving base, the engine cache and the shape
    store; rendering them once per concurrent burst instead of once per scrape keeps a
    scrape cheap however many arrive together (several Prometheus replicas, retries after
    a stall). A scrape that arrives while a rendering runs gets that rendering, so what it
    sees is at most one rendering's duration older than its arrival."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._in_flight: dict[str, Future[bytes]] = {}

    def render(self, accept_header: str) -> tuple[bytes, str]:
        """The body and its content type for a scrape sending `accept_header`."""
        encoder, content_type = choose_encoder(accept_header)
        with self._lock:
            running = self._in_flight.get(content_type)
            owner = running is None
            if running is None:
                running = self._in_flight[content_type] = Future()
        if owner:
            self._run(running, content_type, encoder)
        return running.result(), content_type

    def _run(self, running: Future[bytes], content_type: str,
             encoder: Callable[[CollectorRegistry], bytes]) -> None:
        try:
            running.set_result(encoder(self._registry))
        except BaseException as error:  # every waiter gets the failure, not a hang
            running.set_exception(error)
        finally:
            with self._lock:
                del self._in_flight[content_type]


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

    def __init__(self, listen: Address, registry: CollectorRegistry) -> None:
        self._address = listen
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

