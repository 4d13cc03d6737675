"""The recorder's own process: serves the recorder Envoy mirrors calls to, records into
its own connection to the shape store, and ships what it observed to the parent over a pipe.

It runs apart from the sidecar so conversions (TensorFlow and Python on the sidecar's
threads) do not take the GIL from recording. Started by `RecorderProcess` through
multiprocessing's "spawn" context; SIGTERM stops it gracefully, and it ends by itself when
its parent dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sidecar.recorder.errors import TapStartError
from sidecar.recorder.recorder_server import RecorderServer, serve_recorder
from sidecar.recorder.rest_recorder import serve_rest_recorder
from sidecar.recorder.settings import RecorderSettings, RestRecording
from sidecar.recorder.signature_dtypes import SignatureDtypes
from sidecar.recorder.stats import TapObserver
from sidecar.shapes import Refusal, ShapeObservation, ShapeStore

SHIP_INTERVAL_SECONDS = 0.5
"""How often the child sends what it observed to the parent."""

_PR_SET_PDEATHSIG = 1

Event = tuple[Any, ...]
"""One observer callback as data: its name, then its arguments (see `apply_events`)."""


class ShippingObserver:
    """A `TapObserver` that keeps every callback as an `Event` until `take()`; callbacks come
    from the event loop and the recording thread, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []

    def take(self) -> list[Event]:
        """The events since the last call."""
        with self._lock:
            events, self._events = self._events, []
        return events

    def _add(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def dropped(self, method: str) -> None:
        """Keep a dropped record."""
        self._add(("dropped", method))

    def recorded(self, observation: ShapeObservation, refusal: Refusal | None) -> None:
        """Keep a recorded observation, without its sampled request bytes."""
        self._add(("recorded", dataclasses.replace(observation, sample=None), refusal))

    def unparsable(self, method: str) -> None:
        """Keep an unparsable request."""
        self._add(("unparsable", method))

    def recorder_failed(self, error: Exception) -> None:
        """Keep a failed recorder batch (its message: exceptions may not pickle)."""
        self._add(("recorder_failed", _message(error)))

    def recording_stopped(self, task: str, error: Exception, restart_in: float) -> None:
        """Keep a stopped recording task (with the error's message)."""
        self._add(("recording_stopped", task, _message(error), restart_in))

    def recording_restarted(self, task: str) -> None:
        """Keep a restarted recording task."""
        self._add(("recording_restarted", task))


def _message(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent exits (and check it has not already)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os.kill(os.getpid(), signal.SIGTERM)


async def _serve(settings: RecorderSettings, state_dir: Path, connection: Connection,
                 grace: float, clock: Callable[[], float], rest: RestRecording | None,
                 share: Callable[[], float] | None) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    shipping = ShippingObserver()
    with ShapeStore(state_dir, settings.shape_store, clock) as store:
        servers: list[RecorderServer] = []
        try:
            servers.append(await serve_recorder(settings, store, shipping, clock, share))
            if rest is not None:
                servers.append(await serve_rest_recorder(
                    rest.settings, store, SignatureDtypes(rest.serving_base), shipping, clock,
                    share))
        except TapStartError as error:
            for server in servers:
                await server.stop(0)
            connection.send(("failed", str(error)))
            return
        connection.send(("ready", servers[0].port))
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), SHIP_INTERVAL_SECONDS)
            events = shipping.take()
            if events:
                # Off the loop: a slow parent must not stall taking mirrored calls.
                await asyncio.to_thread(connection.send, ("events", events))
        for server in servers:
            await server.stop(grace)
        connection.send(("events", shipping.take()))


def run_recorder_child(settings: RecorderSettings, state_dir: Path, connection: Connection,
                       grace: float, clock: Callable[[], float],
                       rest: RestRecording | None = None,
                       share: Callable[[], float] | None = None) -> None:
    """The child's entry point: serve the gRPC recorder (and the REST one, with ``rest``)
    until SIGTERM (or the parent's death), then stop with `grace` seconds for calls in
    flight. Sends `("ready", grpc port)` or `("failed", message)` first, then
    `("events", [...])` batches."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    _die_with_parent()
    try:
        asyncio.run(_serve(settings, state_dir, connection, grace, clock, rest, share))
    finally:
        connection.close()


def apply_events(events: list[Event], observer: TapObserver) -> None:
    """Replay shipped events on `observer` (in the parent)."""
    for name, *args in events:
        if name == "recorder_failed":
            observer.recorder_failed(RuntimeError(args[0]))
        elif name == "recording_stopped":
            task, message, restart_in = args
            observer.recording_stopped(task, RuntimeError(message), restart_in)
        else:
            getattr(observer, name)(*args)
