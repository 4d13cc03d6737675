"""Watching the incoming base for model versions that land, settle, or vanish."""

from __future__ import annotations

from sidecar.watch.inotify import InotifyWakeup
from sidecar.watch.listing import fingerprint, is_model_name, list_version_dirs, parse_version_name
from sidecar.watch.loop import run_watch_loop
from sidecar.watch.watcher import IncomingWatcher, WatchEvent, WatchEventKind

__all__ = [
    "IncomingWatcher",
    "InotifyWakeup",
    "WatchEvent",
    "WatchEventKind",
    "fingerprint",
    "is_model_name",
    "list_version_dirs",
    "parse_version_name",
    "run_watch_loop",
]
