"""Start and stop the tap: a `grpc.aio` server in front of TF Serving that records shapes."""

from __future__ import annotations

import time
from collections.abc import Callable

from grpc import aio

from sidecar.tap.errors import TapStartError
from sidecar.tap.methods import FORWARDED_METHODS
from sidecar.tap.proxy import ForwardingHandlers
from sidecar.tap.recording import Recorder, RecordingTask, RecordingWorker, RecordQueue
from sidecar.tap.refusal import RefusingHandler
from sidecar.tap.settings import TapSettings
from sidecar.tap.stats import ObserverFanout, TapObserver, TapStats


class TapServer:
    """A running tap. `port` is the bound port; `stats` its counters; `stop()` ends it."""

    def __init__(self, server: aio.Server, channel: aio.Channel, recording: RecordingTask,
                 port: int, stats: TapStats) -> None:
        self._server = server
        self._channel = channel
        self._recording = recording
        self.port = port
        """The port the tap listens on."""
        self.stats = stats
        """Counters of calls, drops and recordings."""

    async def wait_recorded(self, timeout: float) -> bool:
        """Wait until every queued call was recorded; False if `timeout` seconds passed."""
        return await self._recording.wait_recorded(timeout)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, let in-flight ones finish for `grace` seconds, record what
        is queued (for up to `grace` seconds more), then release everything."""
        await self._server.stop(grace)
        await self._recording.stop(grace or 0.0)
        await self._channel.close()


async def serve_tap(
    settings: TapSettings,
    recorder: Recorder,
    observer: TapObserver | None = None,
    clock: Callable[[], float] = time.time,
) -> TapServer:
    """Start the tap on the running event loop and return it once it accepts calls.

    `recorder` receives the shapes of successful inference calls; `observer` (e.g. a
    metrics exporter) is told about every call, refused ones included, besides the built-in
    `TapServer.stats`; `clock` stamps each call (seconds since the epoch, as the shape
    store expects).
    """
    size_options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    max_backoff_ms = settings.upstream_max_reconnect_backoff_ms
    channel = aio.insecure_channel(
        settings.upstream,
        options=[
            *size_options,
            ("grpc.initial_reconnect_backoff_ms", min(100, max_backoff_ms)),
            ("grpc.min_reconnect_backoff_ms", min(100, max_backoff_ms)),
            ("grpc.max_reconnect_backoff_ms", max_backoff_ms),
        ],
    )
    stats = TapStats()
    observers: TapObserver = stats if observer is None else ObserverFanout([stats, observer])
    queue = RecordQueue(settings.queue_size, settings.queue_max_bytes)
    server = aio.server(options=size_options)
    ForwardingHandlers(FORWARDED_METHODS, channel, queue, observers, clock).register(server)
    server.add_generic_rpc_handlers((RefusingHandler(observers),))
    try:
        port = server.add_insecure_port(settings.listen)
    except RuntimeError as error:
        await channel.close()
        raise TapStartError(
            f"cannot listen on {settings.listen} ({error}); choose a free address"
        ) from error
    if port == 0:
        await channel.close()
        raise TapStartError(f"cannot listen on {settings.listen}; choose a free address")
    await server.start()
    recording = RecordingTask(RecordingWorker(queue, recorder, observers, settings),
                              "tap-recording")
    return TapServer(server, channel, recording, port, stats)
