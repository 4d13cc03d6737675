"""Keeping one child process running: started on a thread of its own, waited on, and
started again with backoff when it dies, until it is asked to stop.

The tap's process and Envoy are both kept this way (``sidecar.recorder.process``,
``sidecar.envoy.process``); each says how to start its child, how to wait for it to end,
and how to stop it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

_LOG = logging.getLogger("sidecar")

QUICK_DEATH_SECONDS = 60.0
"""A child that dies within this long of its start makes the next wait twice as long."""


class Child(Protocol):
    """One supervised child: how to start it, wait for it and stop it."""

    name: str
    """What the log calls it (``the tap process``, ``Envoy``)."""

    def launch(self) -> None:
        """Start a new child; return once it serves. Raises the supervisor's
        ``start_error`` when it cannot."""

    def wait(self) -> int | None:
        """Block until the current child has exited; its exit code."""

    def terminate(self) -> None:
        """Stop the current child, if it runs, and wait for it."""

    @property
    def pid(self) -> int | None:
        """The current child's process id."""


class Supervisor:
    """Runs ``child`` and keeps it running.

    ``restart_delays`` are the first and the longest wait before a dead child is started
    again; the wait doubles while children keep dying soon after their start.
    """

    def __init__(self, child: Child, start_error: type[Exception],
                 restart_delays: tuple[float, float]) -> None:
        self._child = child
        self._start_error = start_error
        self._restart_delays = restart_delays
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        self.restarts = 0
        """How many times a dead child was replaced."""

    def start(self) -> None:
        """Start the child; return once it serves, or raise why it could not start."""
        started = threading.Event()
        failure: list[Exception] = []
        self._thread = threading.Thread(target=self._watch, args=(started, failure),
                                        name=f"watch {self._child.name}", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]

    def stop(self) -> None:
        """Stop the child and do not start it again."""
        self._stopping.set()
        with self._lock:
            self._child.terminate()
        if self._thread is not None:
            self._thread.join(10)

    def _launch(self) -> None:
        self._child.launch()
        self._started_at = time.monotonic()

    def _watch(self, started: threading.Event, failure: list[Exception]) -> None:
        # Children start on this thread only: Linux sends a child its parent-death signal
        # when the thread that started it ends, and this one outlives every child.
        try:
            with self._lock:
                self._launch()
        except self._start_error as error:
            failure.append(error)
            return
        finally:
            started.set()
        delay = self._restart_delays[0]
        while True:
            pid, code = self._child.pid, self._child.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - self._started_at > QUICK_DEATH_SECONDS:
                delay = self._restart_delays[0]
            _LOG.error("%s (pid %s) exited with code %s; restarting it in %.1f s",
                       self._child.name, pid, code, delay)
            if not self._restart(delay):
                return
            delay = min(2 * delay, self._restart_delays[1])

    def _restart(self, delay: float) -> bool:
        """Start the child again after ``delay``, retrying with longer waits; False when
        asked to stop first."""
        while not self._stopping.wait(delay):
            delay = min(2 * delay, self._restart_delays[1])
            with self._lock:
                if self._stopping.is_set():
                    return False
                try:
                    self._launch()
                except self._start_error as error:
                    _LOG.error("restarting %s failed (%s); next try in %.1f s",
                               self._child.name, error, delay)
                    continue
            self.restarts += 1
            _LOG.warning("%s was restarted (pid %s)", self._child.name, self._child.pid)
            return True
        return False

