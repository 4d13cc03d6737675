"""The tap as a background component of `tftrt-sidecar run`: a child process (see
`sidecar.tap.child`), started before the pipeline, stopped after it, restarted with backoff
when it dies, whose observations reach the observer (metrics) in this process."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from sidecar.tap.child import apply_events
from sidecar.tap.child_start import start_tap_child
from sidecar.tap.errors import TapStartError
from sidecar.tap.settings import TapSettings
from sidecar.tap.stats import TapObserver

_LOG = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 5.0
"""How long calls in flight may run on when the tap stops."""
START_TIMEOUT_SECONDS = 120.0
"""How long a starting child may take to listen (it imports TensorFlow's protos)."""


class TapProcess:
    """Runs the tap in a child process and keeps it running.

    `observer` (e.g. the metrics) is told, in this process and on a watcher thread, about
    everything the child observed, within about half a second. `restart_delays` are the
    first and the longest wait before restarting a child that died; the wait doubles
    while children keep dying within a minute of their start.
    """

    def __init__(self, settings: TapSettings, state_dir: Path,
                 observer: TapObserver | None = None,
                 clock: Callable[[], float] = time.time,
                 grace: float = STOP_GRACE_SECONDS,
                 restart_delays: tuple[float, float] = (0.5, 30.0)) -> None:
        self._settings = settings
        self._state_dir = state_dir
        self._observer = observer
        self._clock = clock
        self._grace = grace
        self._restart_delays = restart_delays
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self._started_at = 0.0
        self._watcher: threading.Thread | None = None
        self.port: int | None = None
        """The port the current child listens on (None before the first start)."""
        self.restarts = 0
        """How many times a dead child was replaced."""

    @property
    def serving(self) -> bool:
        """True while a child is up and taking calls."""
        process = self._process
        return process is not None and process.is_alive()

    @property
    def pid(self) -> int | None:
        """The current child's process id."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the child; return once it accepts calls. Raises `TapStartError` when it
        cannot listen (the address is taken) or exits before it does."""
        started: Future[None] = Future()
        self._watcher = threading.Thread(target=self._watch, args=(started,), name="tap-watch",
                                         daemon=True)
        self._watcher.start()
        started.result()

    def stop(self) -> None:
        """SIGTERM the child (it stops taking calls and lets running ones finish), wait for
        it, and apply what it observed last."""
        self._stopping.set()
        with self._lock:
            process = self._process
            if process is not None and process.is_alive():
                process.terminate()
                process.join(self._grace + 10)
                if process.is_alive():
                    _LOG.error("the tap process did not stop in time; killing it")
                    process.kill()
                    process.join()
        if self._watcher is not None:
            self._watcher.join(10)

    def _launch(self) -> None:
        receiving, sending = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=start_tap_child, name="tftrt-sidecar-tap", daemon=True,
            args=(self._settings, self._state_dir, sending, self._grace, self._clock))
        process.start()
        sending.close()  # the child holds the only writer: its exit is our end of file
        try:
            if not receiving.poll(START_TIMEOUT_SECONDS):
                process.kill()
                raise EOFError
            kind, value = receiving.recv()
        except EOFError:
            process.join()
            receiving.close()
            raise TapStartError(f"the tap process exited with code {process.exitcode} "
                                f"before it listened on {self._settings.listen}") from None
        if kind == "failed":
            process.join()
            receiving.close()
            raise TapStartError(value)
        self._process, self._connection, self.port = process, receiving, value
        self._started_at = time.monotonic()

    def _drain(self, connection: Connection) -> None:
        """Apply shipped events until the child's end closes."""
        try:
            while True:
                kind, events = connection.recv()
                if kind == "events" and self._observer is not None:
                    apply_events(events, self._observer)
        except (EOFError, OSError):
            pass
        finally:
            connection.close()

    def _watch(self, started: Future[None]) -> None:
        # Children start on this thread only: Linux sends a child its parent-death signal
        # when the thread that started it ends, and this one outlives every child.
        try:
            with self._lock:
                self._launch()
        except TapStartError as error:
            started.set_exception(error)
            return
        started.set_result(None)
        delay = self._restart_delays[0]
        while True:
            process, connection = self._process, self._connection
            assert process is not None and connection is not None
            self._drain(connection)
            process.join()
            if self._stopping.is_set():
                return
            if time.monotonic() - self._started_at > 60:
                delay = self._restart_delays[0]
            _LOG.error("the tap process %s exited with code %s; restarting it in %.1f s",
                       process.pid, process.exitcode, delay)
            while not self._stopping.wait(delay):
                delay = min(2 * delay, self._restart_delays[1])
                with self._lock:
                    if self._stopping.is_set():
                        return
                    try:
                        self._launch()
                    except TapStartError as error:
                        _LOG.error("restarting the tap failed (%s); next try in %.1f s",
                                   error, delay)
                        continue
                self.restarts += 1
                _LOG.warning("the tap process was restarted (pid %s)", self.pid)
                break
            else:
                return
