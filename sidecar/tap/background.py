"""The tap as a background component of `tftrt-sidecar run`: its own event loop
on a thread, started before the pipeline and stopped after it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from sidecar.tap.recording import Recorder
from sidecar.tap.server import TapServer, serve_tap
from sidecar.tap.settings import TapSettings
from sidecar.tap.stats import TapObserver

_STOP_GRACE_SECONDS = 5.0


class TapComponent:
    """Runs `serve_tap` on a private event loop thread."""

    def __init__(self, settings: TapSettings, recorder: Recorder,
                 observer: TapObserver | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._recorder = recorder
        self._observer = observer
        self._clock = clock
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tap", daemon=True)
        self.server: TapServer | None = None

    def _submit(self, coroutine: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def start(self) -> None:
        """Start the loop thread and the tap; return once it accepts calls."""
        self._thread.start()
        self.server = self._submit(serve_tap(
            self._settings, self._recorder, self._observer, self._clock)).result()

    def stop(self) -> None:
        """Stop taking calls, let running ones finish, then end the loop thread."""
        if self.server is not None:
            self._submit(self.server.stop(_STOP_GRACE_SECONDS)).result()
            self.server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
