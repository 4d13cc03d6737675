"""The fleet store on a shared filesystem (a ReadWriteMany volume: NFS, EFS, CephFS).

An artifact is written under ``artifact.<generation>.<token>/`` of its key's directory (a
name of that one attempt: no other replica or attempt ever writes there), flushed, and
becomes complete when its holder creates ``outcome.<generation>`` saying ``complete`` and
naming that directory, last (:mod:`sidecar.fleet.lease`). Readers look only at the
directory a ``complete`` outcome names, so a holder that dies or loses its lease mid-copy
leaves nothing anyone reads; the next completion of the key sweeps such leftovers. Nothing
in a completed artifact is written again: every attempt writes and removes only its own
directory, and a completed one is never an attempt's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Final

from converter import fsync_directory, fsync_tree, write_atomically
from sidecar.errors import echo
from sidecar.fleet import records
from sidecar.fleet.errors import FleetStoreError, LeaseLostError, StoreFormatError
from sidecar.fleet.keys import KEYS_DIR, FleetKey
from sidecar.fleet.lease import ClaimResult, Lease, LeaseBook, Outcome
from sidecar.fleet.store import ArtifactRecord
from sidecar.publish import Checkpoint, no_checkpoint
from sidecar.publish.layout import random_token

FORMAT_FILE: Final = "fleet-store.json"
"""The store's root marker: ``{"format": 1}``."""

FORMAT: Final = 1
"""The layout version this module reads and writes."""

SHAPES_DIR: Final = "shapes"
"""``shapes/<replica>.json``: one shape-count file per replica."""

ARTIFACT_PREFIX: Final = "artifact."
VERSION_DIR: Final = "version"
RECORD_FILE: Final = "artifact.json"


class SharedDirectoryStore:
    """The :class:`~sidecar.fleet.store.FleetStore` in the directory ``root`` of a shared volume.

    ``book`` is this replica's lease book (its identity and lease duration).
    ``checkpoint`` is called with ``"artifact-staged"`` (the artifact is written and
    flushed, not yet complete) and ``"artifact-complete"``, for crash tests and logs.
    """

    def __init__(self, root: Path, book: LeaseBook, *, checkpoint: Checkpoint = no_checkpoint):
        self._root = root
        self._book = book
        self._checkpoint = checkpoint
        self._check_format()

    @property
    def root(self) -> Path:
        """The store's directory."""
        return self._root

    @property
    def replica(self) -> str:
        """This replica's identity."""
        return self._book.replica

    def key_dir(self, key: FleetKey) -> Path:
        """Where ``key``'s leases, outcomes and artifacts are."""
        return self._root / key.path

    # -- leases ---------------------------------------------------------------------------

    def claim(self, key: FleetKey) -> ClaimResult:
        """See :meth:`FleetStore.claim`."""
        return self._book.claim(self.key_dir(key))

    def renew(self, lease: Lease) -> None:
        """See :meth:`FleetStore.renew`."""
        self._book.renew(lease)

    def release(self, lease: Lease) -> None:
        """See :meth:`FleetStore.release`."""
        self._book.seal(lease, Outcome.RELEASED)

    # -- artifacts --------------------------------------------------------------------------

    def complete(
        self, key: FleetKey, lease: Lease, version_dir: Path, *, flavour: str,
        reason: str | None, source_fingerprint: str | None = None,
    ) -> ArtifactRecord:
        """See :meth:`FleetStore.complete`."""
        if lease.directory != self.key_dir(key):
            raise StoreFormatError(f"the lease is for {lease.directory}, not {key.describe()}",
                                   fix="complete a key with the lease claimed for it")
        record = ArtifactRecord(key, flavour, reason, lease.replica, lease.generation,
                                source_fingerprint)
        self._book.check(lease)  # early: a lost lease need not copy a model first
        artifact = lease.directory / f"{ARTIFACT_PREFIX}{lease.generation}.{random_token()}"
        try:
            _copy_tree(version_dir, artifact / VERSION_DIR)
            records.replace(artifact / RECORD_FILE, record.to_json())
            fsync_tree(artifact)
            fsync_directory(lease.directory)
        except OSError as exc:
            self._remove(artifact)
            raise FleetStoreError.from_os_error(
                exc, action=f"store the artifact of {key.describe()}", path=artifact) from exc
        except FleetStoreError:
            self._remove(artifact)
            raise
        self._checkpoint("artifact-staged")
        try:
            self._book.seal(lease, Outcome.COMPLETE, {"artifact": artifact.name})
        except LeaseLostError:
            self._remove(artifact)
            raise
        self._checkpoint("artifact-complete")
        self._sweep(lease.directory, keep=artifact.name)
        return record

    def artifact(self, key: FleetKey) -> ArtifactRecord | None:
        """See :meth:`FleetStore.artifact`."""
        found = self._completed_dir(key)
        if found is None:
            return None
        record = records.read(found / RECORD_FILE)
        if record is None:
            raise StoreFormatError(f"the completed artifact of {key.describe()} has no record",
                                   where=str(found / RECORD_FILE),
                                   fix="remove the key's directory so that it is built again")
        return ArtifactRecord.from_json(record, str(found / RECORD_FILE))

    def copy_artifact(self, key: FleetKey, destination: Path) -> ArtifactRecord | None:
        """See :meth:`FleetStore.copy_artifact`."""
        record = self.artifact(key)
        found = self._completed_dir(key)
        if record is None or found is None:
            return None
        try:
            _copy_tree(found / VERSION_DIR, destination)
        except OSError as exc:
            raise FleetStoreError.from_os_error(
                exc, action=f"copy the artifact of {key.describe()}", path=destination) from exc
        return record

    def completed_keys(self, tensorflow: str, slug: str) -> list[FleetKey]:
        """See :meth:`FleetStore.completed_keys`."""
        namespace = self._root / KEYS_DIR / f"tf-{tensorflow}" / slug
        keys: list[FleetKey] = []
        for model in records.names(namespace):
            for served in records.names(namespace / model):
                key = FleetKey.from_path(PurePosixPath(KEYS_DIR, f"tf-{tensorflow}", slug,
                                                       model, served))
                if key is not None and self._book.completed(self.key_dir(key)) is not None:
                    keys.append(key)
        return sorted(keys)

    # -- shapes -----------------------------------------------------------------------------

    def contribute_shapes(self, data: bytes) -> None:
        """See :meth:`FleetStore.contribute_shapes`."""
        path = self._root / SHAPES_DIR / f"{self.replica}.json"
        try:
            path.parent.mkdir(exist_ok=True)
            write_atomically(path, data)
        except OSError as exc:
            raise FleetStoreError.from_os_error(
                exc, action="write this replica's shape counts", path=path) from exc

    def shape_contributions(self) -> dict[str, bytes]:
        """See :meth:`FleetStore.shape_contributions`."""
        directory = self._root / SHAPES_DIR
        found: dict[str, bytes] = {}
        for name in records.names(directory):
            if name.endswith(".json") and not records.is_temporary(name):
                try:
                    found[name.removesuffix(".json")] = (directory / name).read_bytes()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise FleetStoreError.from_os_error(
                        exc, action="read a replica's shape counts", path=directory / name
                    ) from exc
        return found

    # -- internals --------------------------------------------------------------------------

    def _check_format(self) -> None:
        marker = self._root / FORMAT_FILE
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FleetStoreError.from_os_error(
                exc, action="create the fleet store", path=self._root) from exc
        found = records.read(marker)
        if found is None:
            others = [name for name in records.names(self._root) if name != FORMAT_FILE]
            if others and not marker.exists():
                raise StoreFormatError(
                    f"{self._root} holds files but no {FORMAT_FILE}: it is not a fleet store",
                    where=str(self._root), fix="pass an empty directory or an existing store")
            # Replicas starting together on an empty volume: one creates it, all read it.
            records.create_exclusively(marker, {"format": FORMAT})
            found = records.read(marker)
        if found is None or found.get("format") != FORMAT:
            raise StoreFormatError(
                f"{marker} says format {echo(found and found.get('format'))}, this sidecar "
                f"reads format {FORMAT}", where=str(marker),
                fix="point every replica of the fleet at a store of the same sidecar release")

    def _completed_dir(self, key: FleetKey) -> Path | None:
        done = self._book.completed(self.key_dir(key))
        if done is None:
            return None
        if not done.artifact.startswith(f"{ARTIFACT_PREFIX}{done.generation}.") or (
                "/" in done.artifact):
            raise StoreFormatError(
                f"the completion of {key.describe()} names {echo(done.artifact)}, no artifact "
                f"of generation {done.generation}", where=str(self.key_dir(key)),
                fix="remove the key's directory so that it is built again")
        return self.key_dir(key) / done.artifact

    def _sweep(self, directory: Path, keep: str) -> None:
        """Remove the artifact directories of attempts that did not complete."""
        for name in records.names(directory):
            if name.startswith(ARTIFACT_PREFIX) and name != keep:
                self._remove(directory / name)

    @staticmethod
    def _remove(path: Path) -> None:
        # Nobody reads an artifact that is not complete; what cannot go now goes at a later sweep.
        shutil.rmtree(path, ignore_errors=True)


def _copy_tree(source: Path, target: Path) -> None:
    """Copy the tree at ``source`` into ``target`` (created if missing), links as links; the
    first OSError propagates with its errno (``shutil.copytree`` would bundle them)."""
    for directory, subdirectories, files in os.walk(source, onerror=_raise):
        here = target / os.path.relpath(directory, source)
        here.mkdir(parents=True, exist_ok=True)
        for name in [*files, *(d for d in subdirectories if os.path.islink(Path(directory, d)))]:
            shutil.copy2(Path(directory, name), here / name, follow_symlinks=False)


def _raise(error: OSError) -> None:
    raise error  # os.walk would skip what it cannot list (a missing version, a lost mount)
