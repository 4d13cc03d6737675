"""Work repeated on a thread of its own every so many seconds until stopped: the mirror
governor's measurements, a lease's renewals, the fleet shape contributor's writes."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Ticker:
    """Calls ``tick()`` every ``interval`` seconds on a daemon thread named ``name``, the
    first call one interval after :meth:`start`, until :meth:`stop` (which ``tick`` may
    call itself when its work is over: a lease found lost).

    ``tick`` handles its own errors: one that escapes ends the ticking, as it would end
    any thread."""

    def __init__(self, name: str, interval: float, tick: Callable[[], object]) -> None:
        self._interval = interval
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start ticking."""
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop ticking and wait up to ``timeout`` seconds (None: as long as it takes) for
        a tick under way to end; once that tick ended, no other starts. Called by the tick
        itself, it returns at once and that tick is the last."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._tick()
