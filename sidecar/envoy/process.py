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
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

from sidecar.base.supervision import Supervisor
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
    """Envoy for ``settings``, started by :meth:`start` and kept running until :meth:`stop`
    (``sidecar.base.supervision``).

    ``restart_delays`` are the first and the longest wait before restarting an Envoy that
    died; the wait doubles while Envoys keep dying within a minute of their start.
    """

    name = "Envoy"

    def __init__(self, settings: EnvoySettings, binary: EnvoyBinary, work_dir: Path,
                 restart_delays: tuple[float, float] = (0.5, 30.0)) -> None:
        self.settings = settings
        self._binary = binary
        self._bootstrap = work_dir / "envoy.json"
        self._work_dir = work_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._supervisor = Supervisor(self, EnvoyBinaryError, restart_delays)

    @property
    def restarts(self) -> int:
        """How many times a dead Envoy was replaced."""
        return self._supervisor.restarts

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
        self._supervisor.start()

    def stop(self) -> None:
        """SIGTERM Envoy and wait for it (killing it after a grace period)."""
        self._supervisor.stop()

    def terminate(self) -> None:
        """SIGTERM the running Envoy and wait for it (killed after the grace period)."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _LOG.error("Envoy did not stop in time; killing it")
                process.kill()
                process.wait()

    def wait(self) -> int | None:
        """Block until the running Envoy exits; its exit code."""
        assert self._process is not None
        return self._process.wait()

    def launch(self) -> None:
        """Start Envoy and wait until its admin API says it is ready."""
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

    def _ready(self) -> bool:
        url = f"http://{self.settings.admin}/ready"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False
