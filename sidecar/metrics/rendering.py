"""One rendering of the registry shared by every scrape that asks while it runs.

Scrape-time gauges read the journal, the serving base, the engine cache and the shape
store; rendering them once per concurrent burst instead of once per scrape keeps a scrape
cheap however many arrive together (several Prometheus replicas, retries after a stall).
A scrape that arrives while a rendering runs gets that rendering, so what it sees is at
most one rendering's duration older than its arrival.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry


class SharedRendering:
    """Renders `registry` in the format a scrape's `Accept` header asks for, sharing each
    rendering in flight among the scrapes that want the same format."""

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
