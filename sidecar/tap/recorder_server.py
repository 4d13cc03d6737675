"""The shape recorder: the gRPC server Envoy mirrors a sample of inference calls to
(see :mod:`sidecar.envoy`).

It is never on a client's path: Envoy sends it a copy of the call and does not wait
for the answer. Each call is answered at once with an empty message and queued, and the
tap's recording worker parses the queued requests and records their shapes in batches,
off the event loop. A full queue drops calls (counted), never slows Envoy down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc import aio

from sidecar.tap.errors import TapStartError
from sidecar.tap.methods import FORWARDED_METHODS, PREDICTION_SERVICE
from sidecar.tap.recording import PendingCall, Recorder, RecordingWorker, RecordQueue
from sidecar.tap.stats import ObserverFanout, TapObserver, TapStats

_EMPTY = b""
"""The answer to every mirrored call: an empty message of the method's response type."""


@dataclass(frozen=True)
class RecorderSettings:
    """Where the recorder listens and what it may queue; validated at the edge."""

    listen: str
    """``host:port`` Envoy mirrors to (port 0 picks a free one; see ``RecorderServer.port``)."""
    max_message_bytes: int = 64 << 20
    """Largest mirrored request accepted (Envoy mirrors only what it buffered)."""
    queue_size: int = 4096
    """Calls waiting to be recorded; when full, new ones are dropped (and counted)."""
    queue_max_bytes: int = 64 << 20
    """Request bytes waiting to be recorded; beyond this, calls are dropped (and counted)."""
    sample_rate: float = 0.01
    """Share of recorded requests kept whole as samples, for replay (0 disables)."""
    sample_max_bytes: int = 1 << 20
    """Requests larger than this are never sampled."""
    sample_seed: int | None = None
    """Seed of the sampling random generator; None seeds from the OS."""
    record_batch_size: int = 1024
    """At most this many calls are parsed and handed to the shape store at once."""
    record_interval_seconds: float = 0.1
    """The worker records at most this often, so under load calls go in large batches."""


class RecorderServer:
    """A running recorder: ``port``, ``stats``, ``received`` and ``stop()``."""

    def __init__(self, server: aio.Server, worker: RecordingWorker,
                 task: asyncio.Task[None], port: int, stats: TapStats) -> None:
        self._server = server
        self._worker = worker
        self._task = task
        self.port = port
        """The port the recorder listens on."""
        self.stats = stats
        """Counters of recordings and drops."""

    async def wait_recorded(self, timeout: float) -> bool:
        """Wait until every queued call was recorded; False if ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        while not self._worker.idle:
            if time.monotonic() >= deadline or self._task.done():
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking calls, record what is queued (up to ``grace`` s), release all."""
        await self._server.stop(grace)
        await self.wait_recorded(grace or 0.0)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def serve_recorder(
    settings: RecorderSettings,
    recorder: Recorder,
    observer: TapObserver | None = None,
    clock: Callable[[], float] = time.time,
) -> RecorderServer:
    """Start the recorder on the running event loop; return it once it accepts calls."""
    stats = TapStats()
    observers: TapObserver = stats if observer is None else ObserverFanout([stats, observer])
    queue = RecordQueue(settings.queue_size, settings.queue_max_bytes)

    def receiver(method: str) -> Callable[[bytes, aio.ServicerContext], object]:
        async def receive(request: bytes, context: aio.ServicerContext) -> bytes:
            if not queue.offer(PendingCall(method, request, clock())):
                observers.dropped(method)
            return _EMPTY
        return receive

    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(receiver(method.name))
        for method in FORWARDED_METHODS if method.recorded
    }
    options = [("grpc.max_receive_message_length", settings.max_message_bytes)]
    server = aio.server(options=options)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(PREDICTION_SERVICE, handlers),))
    try:
        port = server.add_insecure_port(settings.listen)
    except RuntimeError as error:
        raise TapStartError(f"the recorder cannot listen on {settings.listen} ({error}); "
                            "choose a free address") from error
    await server.start()
    worker = RecordingWorker(queue, recorder, observers, settings)
    task = asyncio.create_task(worker.run(), name="shape-recording")
    return RecorderServer(server, worker, task, port, stats)
