"""TEST-ONLY stand-in for the service loop's part that runs the admin API's commands: a
thread that runs :class:`~sidecar.service.commands.LoopCommands` in order, as
``SidecarService.step`` does between jobs, for tests of the admin API without the loop."""

from __future__ import annotations

import threading

from sidecar.admin.backend import ConversionRequest
from sidecar.jobs import JobResult
from sidecar.service.commands import Convert, LoopCommands


def no_conversions(request: ConversionRequest) -> JobResult:
    """A ``convert`` for tests that start no conversion."""
    raise AssertionError(f"this test starts no conversion ({request})")


class CommandLoop:
    """Runs the commands submitted to :attr:`commands` on its own thread, conversions with
    ``convert``; :meth:`close` runs what is queued, then ends the thread."""

    def __init__(self, convert: Convert = no_conversions) -> None:
        self.commands = LoopCommands()
        self._convert = convert
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-command-loop",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Run what is queued, end the thread, and refuse commands from now on."""
        self._stop.set()
        self._thread.join(120)
        self.commands.stop()

    def _run(self) -> None:
        while self.commands.run_next(self._convert) or not self._stop.wait(0.01):
            pass
        while self.commands.run_next(self._convert):
            pass  # what was queued before close
