"""Noticing versions that land in the incoming base, and judging when each is complete."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sidecar.errors import StorageError, echo
from sidecar.watch.listing import FileEntry, Refusal, fingerprint, read_incoming

_LOG = logging.getLogger("sidecar.watch")


class WatchEventKind(enum.Enum):
    """What happened to a version directory."""

    APPEARED = "appeared"
    """A numeric version directory was seen for the first time."""

    READY = "ready"
    """The version is complete: its files settled, or its marker file exists."""

    VANISHED = "vanished"
    """A version seen before is gone from the incoming base."""


@dataclass(frozen=True)
class WatchEvent:
    """One change to one version directory."""

    kind: WatchEventKind
    """What happened."""

    model: str
    """Model directory name."""

    version: int
    """Version number."""

    path: Path
    """The version directory (may no longer exist for VANISHED)."""


@dataclass
class _Seen:
    path: Path
    fingerprint: tuple[FileEntry, ...]
    unchanged_since: float
    ready: bool


class IncomingWatcher:
    """Rescans ``incoming/<model>/<version>/`` and reports versions that appear, get ready, vanish.

    Without a marker file a version is ready once it holds at least one file and
    nothing in it (names, sizes, mtimes) changed for ``settle_seconds`` by
    ``clock``. With ``marker_file`` set, a version is ready as soon as that file
    exists in its top directory, and not before. READY is reported once per
    version; a version that vanishes and comes back starts over.
    """

    def __init__(
        self,
        incoming_base: Path,
        *,
        settle_seconds: float,
        marker_file: str | None,
        clock: Callable[[], float],
    ) -> None:
        self._base = incoming_base
        self._settle_seconds = settle_seconds
        self._marker_file = marker_file
        self._clock = clock
        self._seen: dict[tuple[str, int], _Seen] = {}
        self._refused: dict[Path, str] = {}

    @property
    def incoming_base(self) -> Path:
        """The directory being watched."""
        return self._base

    def scan(self) -> list[WatchEvent]:
        """Rescan once; return the events since the last scan, ordered by model and version."""
        if not self._base.is_dir():
            raise StorageError(
                "the incoming base directory does not exist",
                where=str(self._base),
                fix="create it, or point --incoming at the directory where models land",
            )
        now = self._clock()
        events: list[WatchEvent] = []
        present: set[tuple[str, int]] = set()
        listing = read_incoming(self._base)
        self._note_refusals(listing.refused)
        for model, version, path in listing.versions:
            key = (model, version)
            present.add(key)
            current = fingerprint(path)
            seen = self._seen.get(key)
            if seen is None:
                seen = self._seen[key] = _Seen(path, current, now, ready=False)
                events.append(WatchEvent(WatchEventKind.APPEARED, model, version, path))
            elif current != seen.fingerprint:
                seen.fingerprint, seen.unchanged_since = current, now
            if not seen.ready and self._is_complete(seen, now):
                seen.ready = True
                events.append(WatchEvent(WatchEventKind.READY, model, version, path))
        for key in sorted(set(self._seen) - present):
            gone = self._seen.pop(key)
            events.append(WatchEvent(WatchEventKind.VANISHED, key[0], key[1], gone.path))
        events.sort(key=lambda event: (event.model, event.version))
        return events

    def refused(self) -> list[Refusal]:
        """Directories the last scan refused (a model or version name that cannot be served)."""
        return [Refusal(path, reason) for path, reason in sorted(self._refused.items())]

    def _note_refusals(self, refused: tuple[Refusal, ...]) -> None:
        # Logged once when first refused (not on every rescan), and once when resolved.
        now = {refusal.path: refusal.reason for refusal in refused}
        for path, reason in now.items():
            if self._refused.get(path) != reason:
                _LOG.error("not serving %s: %s", echo(str(path)), reason)
        for path in self._refused.keys() - now.keys():
            _LOG.info("%s is no longer refused (renamed or removed)", echo(str(path)))
        self._refused = now

    def waiting(self) -> list[tuple[str, int]]:
        """Versions seen but not ready yet, as (model, version)."""
        return sorted(key for key, seen in self._seen.items() if not seen.ready)

    def _is_complete(self, seen: _Seen, now: float) -> bool:
        if self._marker_file is not None:
            return (seen.path / self._marker_file).is_file()
        has_file = any(not is_dir for _, is_dir, _, _ in seen.fingerprint)
        return has_file and now - seen.unchanged_since >= self._settle_seconds
