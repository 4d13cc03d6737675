"""Envoy run as a child process of the sidecar, and kept running.

The bootstrap is generated from the settings and validated by Envoy (``--mode
validate``) before Envoy starts, so a bad setting is an error at start, never a proxy
that crash-loops. Envoy dies with the sidecar (``PR_SET_PDEATHSIG``); when it dies on
its own it is restarted with backoff, like the tap's process.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

from sidecar.envoy.binary import EnvoyBinary
from sidecar.envoy.bootstrap import validate_bootstrap, write_bootstrap
from sidecar.envoy.errors import EnvoyBinaryError
from sidecar.envoy.settings import EnvoySettings

_LOG = logging.getLogger("sidecar.envoy")

READY_TIMEOUT_SECONDS: Final = 30.0
"""How long a starting Envoy may take to answer ``/ready`` on its admin API."""

STOP_GRACE_SECONDS: Final = 5.0
"""How long Envoy may take to exit after SIGTERM before it is killed."""

ENVOY_LOGGING: Final = ("--log-level", "error", "--log-format", "%Y-%m-%d %T,%e ERROR envoy: %v")
"""Envoy logs its errors only, in the sidecar's own line format (its warnings are about
its own defaults, and one is logged at every SIGTERM)."""

_EXEC_DYING_WITH_PARENT: Final = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM); "  # PR_SET_PDEATHSIG, kept across exec
    "os.execv(sys.argv[1], sys.argv[1:])"
)
"""Run in a fresh interpreter, then replaced by Envoy: it asks Linux to SIGTERM Envoy when
the sidecar's thread that started it ends. (``preexec_fn`` would do it too, but it forks
the sidecar with gRPC's threads running, which gRPC logs and warns against.)"""


class EnvoyProcess:
    """Envoy for ``settings``, started by :meth:`start` and kept running until :meth:`stop`.

    ``restart_delays`` are the first and the longest wait before restarting an Envoy that
    died; the wait doubles while Envoys keep dying within a minute of their start.
    """

    def __init__(self, settings: EnvoySettings, binary: EnvoyBinary, work_dir: Path,
                 restart_delays: tuple[float, float] = (0.5, 30.0)) -> None:
        self.settings = settings
        self._binary = binary
        self._bootstrap = work_dir / "envoy.json"
        self._work_dir = work_dir
        self._restart_delays = restart_delays
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._watcher: threading.Thread | None = None
        self.restarts = 0
        """How many times a dead Envoy was replaced."""

    @property
    def serving(self) -> bool:
        """True while Envoy runs."""
        process = self._process
        return process is not None and process.poll() is None

    @property
    def pid(self) -> int | None:
        """The running Envoy's process id."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Write and validate the bootstrap, start Envoy, return once it is ready.

        Raises EnvoyConfigError when Envoy refuses the configuration, EnvoyBinaryError
        when it exits or does not get ready.
        """
        self._work_dir.mkdir(parents=True, exist_ok=True)
        write_bootstrap(self.settings, self._bootstrap)
        validate_bootstrap(self._binary, self._bootstrap)
        ready = threading.Event()
        failure: list[Exception] = []
        self._watcher = threading.Thread(target=self._watch, args=(ready, failure),
                                         name="envoy-watch", daemon=True)
        self._watcher.start()
        ready.wait()
        if failure:
            raise failure[0]

    def stop(self) -> None:
        """SIGTERM Envoy and wait for it (killing it after a grace period)."""
        self._stopping.set()
        with self._lock:
            process = self._process
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    _LOG.error("Envoy did not stop in time; killing it")
                    process.kill()
                    process.wait()
        if self._watcher is not None:
            self._watcher.join(10)

    def _launch(self) -> None:
        command = [sys.executable, "-c", _EXEC_DYING_WITH_PARENT, str(self._binary.path),
                   "-c", str(self._bootstrap), "--disable-hot-restart", *ENVOY_LOGGING]
        if self.settings.workers is not None:
            command += ["--concurrency", str(self.settings.workers)]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not self._ready() or process.poll() is not None:  # a taken admin port answers
            if process.poll() is not None:
                raise EnvoyBinaryError(f"Envoy exited with code {process.returncode} before "
                                       "it was ready", where=str(self._bootstrap),
                                       fix="read Envoy's log lines above")
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise EnvoyBinaryError(f"Envoy was not ready within {READY_TIMEOUT_SECONDS} s",
                                       where=str(self._bootstrap),
                                       fix="read Envoy's log lines above")
            time.sleep(0.05)
        self._process = process
        self._started_at = time.monotonic()

    def _ready(self) -> bool:
        url = f"http://{self.settings.admin}/ready"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _watch(self, ready: threading.Event, failure: list[Exception]) -> None:
        # Envoys start on this thread only: Linux sends a child its parent-death signal
        # when the thread that started it ends, and this one outlives every Envoy.
        try:
            with self._lock:
                self._launch()
        except EnvoyBinaryError as error:
            failure.append(error)
            ready.set()
            return
        ready.set()
        delay = self._restart_delays[0]
        while True:
            process = self._process
            assert process is not None
            process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - self._started_at > 60:
                delay = self._restart_delays[0]
            _LOG.error("Envoy (pid %s) exited with code %s; restarting it in %.1f s",
                       process.pid, process.returncode, delay)
            while not self._stopping.wait(delay):
                delay = min(2 * delay, self._restart_delays[1])
                with self._lock:
                    if self._stopping.is_set():
                        return
                    try:
                        self._launch()
                    except EnvoyBinaryError as error:
                        _LOG.error("restarting Envoy failed (%s); next try in %.1f s",
                                   error, delay)
                        continue
                self.restarts += 1
                _LOG.warning("Envoy was restarted (pid %s)", self.pid)
                break
            else:
                return


