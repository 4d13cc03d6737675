"""The shape recorder: the gRPC server Envoy mirrors a sample of inference calls to
(see :mod:`sidecar.envoy`).

It is never on a client's path: Envoy sends it a copy of the call and does not wait
for the answer. Each call is answered at once with an empty message and queued, and the
recording worker parses the queued requests and records their shapes in batches,
off the event loop. A full queue drops calls (counted), never slows Envoy down.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
from grpc import aio

from sidecar.base.fanout import fan_out
from sidecar.recorder.errors import TapStartError
from sidecar.recorder.recording import (
    PendingCall,
    Recorder,
    RecordingTask,
    RecordingWorker,
    RecordQueue,
)
from sidecar.recorder.settings import RecorderSettings
from sidecar.recorder.stats import TapObserver, TapStats
from sidecar.tfserving.methods import FORWARDED_METHODS, PREDICTION_SERVICE

_EMPTY = b""
"""The answer to every mirrored call: an empty message of the method's response type."""


class RecorderServer:
    """A running recorder: ``port``, ``stats`` and ``stop()``."""

    def __init__(self, server: aio.Server, recording: RecordingTask, port: int,
                 stats: TapStats) -> None:
        self._server = server
        self._recording = recording
        self.port = port
        """The port the recorder listens on."""
        self.stats = stats
        """Counters of recordings and drops."""

    async def wait_recorded(self, timeout: float) -> bool:
        """Wait until every queued call was recorded; False if ``timeout`` seconds passed."""
        return await self._recording.wait_recorded(timeout)

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking calls, record what is queued (up to ``grace`` s), release all."""
        await self._server.stop(grace)
        await self._recording.stop(grace or 0.0)


async def serve_recorder(
    settings: RecorderSettings,
    recorder: Recorder,
    observer: TapObserver | None = None,
    clock: Callable[[], float] = time.time,
    share: Callable[[], float] | None = None,
) -> RecorderServer:
    """Start the recorder on the running event loop; return it once it accepts calls.

    ``share`` tells the share of calls Envoy mirrors (each recorded call then counts as
    1 / share); None: every call is mirrored."""
    stats = TapStats()
    observers: TapObserver = stats if observer is None else fan_out([stats, observer])
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
        port = server.add_insecure_port(str(settings.listen))
    except RuntimeError as error:
        raise TapStartError(f"the recorder cannot listen on {settings.listen} ({error}); "
                            "choose a free address") from error
    await server.start()
    recording = RecordingTask(RecordingWorker(queue, recorder, observers, settings,
                                              share=share),
                              "shape-recording", observers, settings.recording_restart_seconds)
    return RecorderServer(server, recording, port, stats)
