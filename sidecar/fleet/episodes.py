"""Logging a store fault once per episode: when it starts and when it passes.

A background task that meets the same refusal every tick (a full or read-only volume)
would otherwise log it every tick for as long as the fault lasts.
"""

from __future__ import annotations

import logging
import threading


class FaultEpisodes:
    """Logs ``what`` (a gerund: "writing this replica's shape counts") failing once when a
    failure follows success, and once when it works again; thread-safe."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._lock = threading.Lock()
        self._failing = False

    def failed(self, error: Exception, consequence: str) -> None:
        """``what`` failed with ``error``; logged as a warning with ``consequence`` only
        when it worked before (or never ran)."""
        with self._lock:
            started, self._failing = not self._failing, True
        if started:
            self._log.warning("%s failed (%s); %s", self._what, error, consequence)

    def succeeded(self) -> None:
        """``what`` worked; logged when it ends a failing episode."""
        with self._lock:
            ended, self._failing = self._failing, False
        if ended:
            self._log.info("%s works again", self._what)
