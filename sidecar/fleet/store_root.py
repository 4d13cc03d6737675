"""The fleet store's root directory: its marker, and creating directories under it.

A store is the directory that ``fleet-store.json`` marks. Only :meth:`StoreRoot.open`, at
a replica's start, creates the root and the marker (a fresh store, on an empty or missing
directory). Every directory created later, while replicas run, goes through
:meth:`StoreRoot.make_directory`: one level at a time below the root, never the root
itself, only while the marker is there, and undone if the marker vanished meanwhile. So a
store deleted (or unmounted) under running replicas is never recreated in part, which would
leave a directory that holds files but no marker, one no replica can start on: what the
replicas write fails with a retryable :class:`~sidecar.fleet.errors.FleetStoreError`
naming the fix (:meth:`StoreRoot.check`), until the store is restored or a restarted
replica creates a fresh one.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Final

from sidecar.base.errors import echo
from sidecar.fleet import records
from sidecar.fleet.errors import FleetStoreError, StoreFormatError

FORMAT_FILE: Final = "fleet-store.json"
"""The store's root marker: ``{"format": 1}``."""

FORMAT: Final = 1
"""The layout version this sidecar reads and writes."""


class StoreRoot:
    """The fleet store's root directory ``path``, once :meth:`open` found or made its marker."""

    def __init__(self, path: Path) -> None:
        self.path = path
        """The store's directory."""

    @classmethod
    def open(cls, path: Path) -> StoreRoot:
        """The store at ``path``; a fresh one (the directory and its marker) when ``path`` is
        missing or empty. StoreFormatError when it holds something else, or another format."""
        marker = path / FORMAT_FILE
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FleetStoreError.from_os_error(
                exc, action="create the fleet store", path=path) from exc
        found = records.read(marker)
        if found is None:
            others = [name for name in records.names(path) if name != FORMAT_FILE]
            if others and not marker.exists():
                raise StoreFormatError(
                    f"{path} holds files but no {FORMAT_FILE}: it is not a fleet store",
                    where=str(path), fix="pass an empty directory or an existing store")
            # Replicas starting together on an empty volume: one creates it, all read it.
            records.create_exclusively(marker, {"format": FORMAT})
            found = records.read(marker)
        if found is None or found.get("format") != FORMAT:
            raise StoreFormatError(
                f"{marker} says format {echo(found and found.get('format'))}, this sidecar "
                f"reads format {FORMAT}", where=str(marker),
                fix="point every replica of the fleet at a store of the same sidecar release")
        return cls(path)

    def check(self) -> None:
        """FleetStoreError (retryable) when the marker is gone: the store was deleted or
        its volume unmounted under this replica."""
        try:
            present = (self.path / FORMAT_FILE).is_file()
        except OSError as exc:
            raise FleetStoreError.from_os_error(
                exc, action=f"look for {FORMAT_FILE}", path=self.path) from exc
        if not present:
            raise FleetStoreError(
                f"the fleet store lost its {FORMAT_FILE} (deleted, or its volume unmounted): "
                "this replica writes nothing to it until it is back, and serves on",
                where=str(self.path),
                fix="restore the store's files (or remount its volume); to start a fresh "
                    "store instead, leave the directory empty (or missing) and restart one "
                    "replica, which creates it: the running ones carry on with it")

    def make_directory(self, directory: Path, *,
                       action: str = "create a directory in the fleet store") -> None:
        """Create ``directory`` (a path below the root) and its missing parents, but not the
        root: FleetStoreError, naming the fix, if the marker is gone before or after, or
        (saying it could not do ``action``) if the volume refuses."""
        parts = directory.relative_to(self.path).parts
        assert parts, "the root is created only by StoreRoot.open"
        self.check()
        created: list[Path] = []
        here = self.path
        for part in parts:
            here = here / part
            try:
                here.mkdir()  # never parents=True: a vanished root stays vanished
                created.append(here)
            except FileExistsError:
                continue
            except FileNotFoundError as exc:  # the store went while this call walked it
                self.check()
                raise FleetStoreError.from_os_error(exc, action=action, path=here) from exc
            except OSError as exc:
                raise FleetStoreError.from_os_error(exc, action=action, path=here) from exc
        if created:
            try:
                self.check()
            except FleetStoreError:
                # Deleted while this call created: take back what it made (if still empty).
                for made in reversed(created):
                    with contextlib.suppress(OSError):
                        made.rmdir()
                raise
