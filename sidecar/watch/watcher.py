"""Noticing versions that land in the incoming base, and judging when each is complete."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sidecar.base.errors import echo
from sidecar.watch.incoming_health import IncomingFault, look_at_incoming
from sidecar.watch.listing import FileEntry, Refusal, fingerprint, incoming_version_dir

_LOG = logging.getLogger("sidecar.watch")


class WatchEventKind(enum.Enum):
    """What happened to a version directory."""

    APPEARED = "appeared"
    """A numeric version directory was seen for the first time."""

    READY = "ready"
    """The version is complete: its files settled, or its marker file exists."""

    VANISHED = "vanished"
    """A version seen before has been gone from the incoming base for the settle time
    (while incoming is healthy: see :mod:`sidecar.watch.incoming_health`)."""


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
    """The version directory under the name found on disk (``0007`` stays ``0007``). For
    VANISHED, the one last seen, or the model directory when the version was expected
    (:meth:`IncomingWatcher.expect`) but never seen."""


@dataclass
class _Seen:
    path: Path | None
    """The version directory as last listed; None while it has not been."""
    fingerprint: tuple[FileEntry, ...]
    unchanged_since: float
    ready: bool
    gone_since: float | None = None
    """When a scan first found it gone (reset whenever it is there again)."""


class IncomingWatcher:
    """Rescans ``incoming/<model>/<version>/`` and reports versions that appear, get ready, vanish.

    Without a marker file a version is ready once it holds at least one file and
    nothing in it (names, sizes, mtimes) changed for ``settle_seconds`` by
    ``clock``. With ``marker_file`` set, a version is ready as soon as that file
    exists in its top directory, and not before. READY is reported once per
    version; a version that vanishes and comes back starts over.

    A version is VANISHED only once it has stayed gone for ``settle_seconds``: a scan
    that runs while ``rm -rf`` works through a model's versions (removing some and not
    yet others) must not withdraw the newest and keep the oldest. Gone and back within
    that time, it is as if it never left.

    A fault in the incoming base (missing, unreadable, or empty where ``is_served``
    models had versions) is not a vanishing: the versions under it stay seen, no
    VANISHED is reported for them, and :attr:`faults` says what is wrong until it
    passes.
    """

    def __init__(
        self,
        incoming_base: Path,
        *,
        settle_seconds: float,
        marker_file: str | None,
        clock: Callable[[], float],
        is_served: Callable[[str], bool] = lambda model: False,
    ) -> None:
        self._base = incoming_base
        self._is_served = is_served
        self._faults: tuple[IncomingFault, ...] = ()
        self._settle_seconds = settle_seconds
        self._marker_file = marker_file
        self._clock = clock
        self._seen: dict[tuple[str, int], _Seen] = {}
        self._refused: dict[Path, str] = {}

    @property
    def incoming_base(self) -> Path:
        """The directory being watched."""
        return self._base

    @property
    def faults(self) -> tuple[IncomingFault, ...]:
        """What the last scan found wrong with the incoming base (empty when healthy)."""
        return self._faults

    def scan(self) -> list[WatchEvent]:
        """Rescan once; return the events since the last scan, ordered by model and version.

        Never raises for the incoming base's own state: a fault is kept in :attr:`faults`.
        """
        now = self._clock()
        view = look_at_incoming(self._base, self._seen.keys(), is_served=self._is_served)
        self._faults = view.faults
        if view.listing is None:
            return []
        try:
            return self._events(view.listing.versions, set(view.gone(self._seen.keys())), now)
        except OSError as exc:  # a version's files became unreadable while being listed
            self._faults = (IncomingFault(self._base, f"cannot be read ({exc.strerror or exc})",
                                          None),)
            return []
        finally:
            self._note_refusals(view.listing.refused)

    def expect(self, keys: Iterable[tuple[str, int]]) -> None:
        """Count (model, version) directories as seen before (e.g. what the journal published
        before a restart), so that a fault under them is one from the first scan. Each is
        judged afresh: READY once it settles, VANISHED if incoming says it is gone."""
        now = self._clock()
        for model, version in keys:
            if (model, version) not in self._seen:
                path = incoming_version_dir(self._base, model, version)
                self._seen[(model, version)] = _Seen(path, (), now, ready=False)

    def resettle(self, model: str, version: int) -> bool:
        """Judge (model, version) as if just seen: READY is reported again once it settles
        (or has its marker file). For a job whose source changed under it. False if the
        version is not being watched."""
        seen = self._seen.get((model, version))
        if seen is None:
            return False
        seen.fingerprint = () if seen.path is None else self._fingerprint(seen.path)
        seen.unchanged_since, seen.ready = self._clock(), False
        return True

    def _events(
        self, versions: tuple[tuple[str, int, Path], ...], gone: set[tuple[str, int]], now: float,
    ) -> list[WatchEvent]:
        events: list[WatchEvent] = []
        for model, version, path in versions:
            key = (model, version)
            current = self._fingerprint(path)
            seen = self._seen.get(key)
            if seen is None:
                seen = self._seen[key] = _Seen(path, current, now, ready=False)
                events.append(WatchEvent(WatchEventKind.APPEARED, model, version, path))
            elif current != seen.fingerprint or path != seen.path:
                seen.path, seen.fingerprint, seen.unchanged_since = path, current, now
            if not seen.ready and self._is_complete(seen, path, now):
                seen.ready = True
                events.append(WatchEvent(WatchEventKind.READY, model, version, path))
        for key, seen in list(self._seen.items()):
            if key not in gone:
                seen.gone_since = None
                continue
            if seen.gone_since is None:
                seen.gone_since = now
            if now - seen.gone_since >= self._settle_seconds:
                del self._seen[key]
                events.append(WatchEvent(WatchEventKind.VANISHED, key[0], key[1],
                                         seen.path or self._base / key[0]))
        events.sort(key=lambda event: (event.model, event.version))
        return events

    def _fingerprint(self, path: Path) -> tuple[FileEntry, ...]:
        # Links inside the incoming base are followed: a change behind one is a change.
        return fingerprint(path, links_within=self._base)

    def refused(self) -> list[Refusal]:
        """Directories the last scan refused (a model or version name that cannot be served)."""
        return [Refusal(path, reason) for path, reason in sorted(self._refused.items())]

    def _note_refusals(self, refused: tuple[Refusal, ...]) -> None:
        # Logged once when first refused (not on every rescan), and once when resolved.
        now = {refusal.path: refusal.reason for refusal in refused}
        for path, reason in now.items():
            if self._refused.get(path) != reason:
                _LOG.error("not serving %s: %s", echo(path), reason)
        for path in self._refused.keys() - now.keys():
            _LOG.info("%s is no longer refused (renamed or removed)", echo(path))
        self._refused = now

    def waiting(self) -> list[tuple[str, int]]:
        """Versions seen but not ready yet, as (model, version)."""
        return sorted(key for key, seen in self._seen.items() if not seen.ready)

    def _is_complete(self, seen: _Seen, path: Path, now: float) -> bool:
        if self._marker_file is not None:
            return (path / self._marker_file).is_file()
        has_file = any(not is_dir for _, is_dir, _, _ in seen.fingerprint)
        return has_file and now - seen.unchanged_since >= self._settle_seconds
