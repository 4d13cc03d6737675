"""Watching the incoming base for model versions that land, settle, or vanish."""

from __future__ import annotations

from sidecar.tfserving.model_names import is_model_name
from sidecar.watch.incoming_health import IncomingFault, IncomingView, look_at_incoming
from sidecar.watch.inotify import InotifyWakeup
from sidecar.watch.listing import (
    IncomingListing,
    Refusal,
    fingerprint,
    incoming_version_dir,
    list_version_dirs,
    read_incoming,
)
from sidecar.watch.watcher import IncomingWatcher, WatchEvent, WatchEventKind

__all__ = [
    "IncomingFault",
    "IncomingListing",
    "IncomingView",
    "IncomingWatcher",
    "InotifyWakeup",
    "Refusal",
    "WatchEvent",
    "WatchEventKind",
    "fingerprint",
    "incoming_version_dir",
    "is_model_name",
    "list_version_dirs",
    "look_at_incoming",
    "read_incoming",
]
