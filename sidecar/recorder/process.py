"""The recorder as a background component of `tftrt-sidecar run`: a child process (see
`sidecar.recorder.child`), started before Envoy and the pipeline, stopped after them, restarted
with backoff when it dies, whose observations reach the observer (metrics) here."""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from sidecar.base.fanout import fan_out
from sidecar.base.supervision import Supervisor
from sidecar.recorder.child import apply_events
from sidecar.recorder.child_start import start_recorder_child
from sidecar.recorder.errors import TapStartError
from sidecar.recorder.settings import RecorderSettings, RestRecording
from sidecar.recorder.stats import TapObserver, TapStats
from sidecar.shapes import Refusal, ShapeObservation

_LOG = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 5.0
"""How long mirrored calls in flight may run on when the recorder stops."""
START_TIMEOUT_SECONDS = 120.0
"""How long a starting child may take to listen (it imports TensorFlow's protos)."""


class RecorderProcess:
    """Runs the recorder in a child process and keeps it running (`sidecar.base.supervision`).

    `share` (picklable: it is sent to the child) tells the share of calls Envoy mirrors.
    `observer` (e.g. the metrics) is told, in this process and on a watcher thread, about
    everything the child observed, within about half a second. `restart_delays` are the
    first and the longest wait before restarting a child that died; the wait doubles
    while children keep dying within a minute of their start.
    """

    name = "the recorder process"

    def __init__(self, settings: RecorderSettings, state_dir: Path,
                 observer: TapObserver | None = None, rest: RestRecording | None = None,
                 share: Callable[[], float] | None = None,
                 clock: Callable[[], float] = time.time,
                 grace: float = STOP_GRACE_SECONDS,
                 restart_delays: tuple[float, float] = (0.5, 30.0)) -> None:
        self._settings = settings
        self._rest = rest
        self._share = share
        self._state_dir = state_dir
        self.stats = TapStats()
        """What every child observed, counted here."""
        observers: list[TapObserver] = [self.stats, _RecordingLog()]
        self._observer = fan_out(observers if observer is None else [*observers, observer])
        self._clock = clock
        self._grace = grace
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self._supervisor = Supervisor(self, TapStartError, restart_delays)
        self.port: int | None = None
        """The port the current child listens on (None before the first start)."""

    @property
    def restarts(self) -> int:
        """How many times a dead child was replaced."""
        return self._supervisor.restarts

    @property
    def serving(self) -> bool:
        """True while a child is up, taking calls and recording them (none of its
        recording tasks waits to be started again after it died)."""
        process = self._process
        return (process is not None and process.is_alive()
                and not self.stats.stopped_recordings)

    @property
    def pid(self) -> int | None:
        """The current child's process id."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the child; return once it takes calls. Raises `TapStartError` when it
        cannot listen (the address is taken) or exits before it does."""
        self._supervisor.start()

    def stop(self) -> None:
        """SIGTERM the child (it stops taking calls and records what it took), wait for
        it, and apply what it observed last."""
        self._supervisor.stop()

    def terminate(self) -> None:
        """SIGTERM the current child and wait for it (killed after the grace period)."""
        process = self._process
        if process is not None and process.is_alive():
            process.terminate()
            process.join(self._grace + 10)
            if process.is_alive():
                _LOG.error("the recorder process did not stop in time; killing it")
                process.kill()
                process.join()

    def launch(self) -> None:
        """Start a child and wait until it listens."""
        receiving, sending = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=start_recorder_child, name="tftrt-sidecar-recorder", daemon=True,
            args=(self._settings, self._state_dir, sending, self._grace, self._clock,
                  self._rest, self._share))
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
            raise TapStartError(f"the recorder process exited with code {process.exitcode} "
                                f"before it listened on {self._settings.listen}") from None
        if kind == "failed":
            process.join()
            receiving.close()
            raise TapStartError(value)
        self.stats.stopped_recordings.clear()  # the dead child's tasks are gone with it
        self._process, self._connection, self.port = process, receiving, value

    def _drain(self, connection: Connection) -> None:
        """Apply shipped events until the child's end closes."""
        try:
            while True:
                kind, events = connection.recv()
                if kind == "events":
                    apply_events(events, self._observer)
        except (EOFError, OSError):
            pass
        finally:
            connection.close()

    def wait(self) -> int | None:
        """Apply what the current child ships until it exits; its exit code."""
        process, connection = self._process, self._connection
        assert process is not None and connection is not None
        self._drain(connection)
        process.join()
        return process.exitcode


class _RecordingLog:
    """Logs, here where logging is set up, the child's recording tasks that died and came
    back; a `TapObserver` for which nothing else is worth a line."""

    def dropped(self, method: str) -> None:
        """Not logged (counted)."""

    def recorded(self, observation: ShapeObservation, refusal: Refusal | None) -> None:
        """Not logged."""

    def unparsable(self, method: str) -> None:
        """Not logged (counted)."""

    def recorder_failed(self, error: Exception) -> None:
        """Not logged (counted)."""

    def recording_stopped(self, task: str, error: Exception, restart_in: float) -> None:
        """Log the death."""
        _LOG.error("the recorder's %s task died (%s); its batch of calls is lost, and it "
                   "restarts in %.1f s (the tap's health is NOT_SERVING meanwhile)",
                   task, error, restart_in)

    def recording_restarted(self, task: str) -> None:
        """Log the restart."""
        _LOG.warning("the recorder's %s task was restarted", task)
