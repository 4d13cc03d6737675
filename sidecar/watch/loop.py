"""The rescan loop: scan, hand over events, wait, until asked to stop."""

from __future__ import annotations

from collections.abc import Callable

from sidecar.watch.watcher import IncomingWatcher, WatchEvent


def run_watch_loop(
    watcher: IncomingWatcher,
    on_events: Callable[[list[WatchEvent]], None],
    *,
    interval_seconds: float,
    sleep: Callable[[float], object],
    should_stop: Callable[[], bool],
) -> None:
    """Scan every ``interval_seconds`` and pass non-empty event lists to ``on_events``.

    ``sleep`` waits between scans: ``time.sleep``, an ``Event.wait``, or
    :meth:`~sidecar.watch.inotify.InotifyWakeup.sleep` to rescan as soon as
    something changes. ``should_stop`` is checked before each scan and each wait.
    """
    while not should_stop():
        events = watcher.scan()
        if events:
            on_events(events)
        if should_stop():
            return
        sleep(interval_seconds)
