"""The fleet store on a shared filesystem (a ReadWriteMany volume: NFS, EFS, CephFS).

An artifact is written under ``artifact.<generation>.<token>/`` of its key's directory (a
name of that one attempt: no other replica or attempt ever writes there), flushed, and
becomes complete when its holder creates ``outcome.<generation>`` saying ``complete`` and
naming that directory, last (:mod:`sidecar.fleet.lease`). Readers look only at the
directory a ``complete`` outcome names, so a holder that dies or loses its lease mid-copy
leaves nothing anyone reads; the next completion of the key sweeps such leftovers. Nothing
in a completed artifact is written again: every attempt writes and removes only its own
directory, and a completed one is never an attempt's. Its ``artifact.json`` carries the
manifest of the files as the builder copied them in (:mod:`sidecar.fleet.manifest`), and a
copy out that differs from it, or a record that cannot be read, is a
:class:`~sidecar.fleet.errors.DamagedArtifactError` (the installer then refuses the
generation, :meth:`SharedDirectoryStore.reject`). Every directory it creates in the
store goes through :class:`~sidecar.fleet.store_root.StoreRoot`, so a store deleted under a
running replica is never recreated in part.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Final

from durable import fsync_directory, fsync_tree, write_atomically
from sidecar.base.errors import echo
from sidecar.fleet import records
from sidecar.fleet.errors import (
    DamagedArtifactError,
    FleetStoreError,
    LeaseLostError,
    StoreFormatError,
)
from sidecar.fleet.keys import KEYS_DIR, FleetKey
from sidecar.fleet.lease import ClaimResult, Completed, Lease, LeaseBook, Outcome
from sidecar.fleet.manifest import copy_tree
from sidecar.fleet.store import ArtifactRecord
from sidecar.fleet.store_root import StoreRoot
from sidecar.publish import Checkpoint, no_checkpoint
from sidecar.tfserving.layout import random_token

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
        self._store_root = StoreRoot.open(root)
        self._root = root
        self._book = book
        self._checkpoint = checkpoint
        self._lock = threading.Lock()
        self._refused: dict[str, int] = {}

    @property
    def root(self) -> Path:
        """The store's directory."""
        return self._root

    @property
    def store_root(self) -> StoreRoot:
        """The store's root: its marker, and where directories in it are created."""
        return self._store_root

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
        self._store_root.make_directory(self.key_dir(key), action=f"claim {key.describe()}")
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
        self._store_root.make_directory(artifact,
                                        action=f"store the artifact of {key.describe()}")
        try:
            record = dataclasses.replace(record,
                                         manifest=copy_tree(version_dir, artifact / VERSION_DIR))
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
        self._store_root.check()  # a store that went is not one without the artifact
        found = self._completed(key)
        return None if found is None else self._record(key, *found)

    def copy_artifact(self, key: FleetKey, destination: Path) -> ArtifactRecord | None:
        """See :meth:`FleetStore.copy_artifact`."""
        self._store_root.check()  # a store that went is not one whose artifact went
        found = self._completed(key)
        if found is None:
            return None
        done, directory = found
        record = self._record(key, done, directory)
        try:
            copied = copy_tree(directory / VERSION_DIR, destination)
        except FileNotFoundError as exc:
            if not str(exc.filename or "").startswith(str(directory)):
                raise FleetStoreError.from_os_error(
                    exc, action=f"copy the artifact of {key.describe()}",
                    path=destination) from exc
            raise self._damaged(key, done, f"{exc.filename} is gone", directory) from exc
        except OSError as exc:
            raise FleetStoreError.from_os_error(
                exc, action=f"copy the artifact of {key.describe()}", path=destination) from exc
        problem = None if record.manifest is None else record.manifest.difference(copied)
        if problem is not None:
            raise self._damaged(key, done, f"{VERSION_DIR}/{problem}", directory)
        return record

    def reject(self, key: FleetKey, generation: int, reason: str) -> bool:
        """See :meth:`FleetStore.reject`."""
        with self._lock:
            self._refused[key.model] = self._refused.get(key.model, 0) + 1
        return self._book.reject(self.key_dir(key), generation, reason)

    @property
    def refused_artifacts(self) -> Mapping[str, int]:
        """See :attr:`FleetStore.refused_artifacts`."""
        with self._lock:
            return MappingProxyType(dict(self._refused))

    @property
    def corrupt_outcomes(self) -> int:
        """See :attr:`FleetStore.corrupt_outcomes`."""
        return self._book.corrupt_outcomes

    def completed_keys(self, tensorflow: str, slug: str) -> list[FleetKey]:
        """See :meth:`FleetStore.completed_keys`."""
        self._store_root.check()
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
        self._store_root.make_directory(path.parent, action="write this replica's shape counts")
        try:
            write_atomically(path, data)
        except OSError as exc:
            raise FleetStoreError.from_os_error(
                exc, action="write this replica's shape counts", path=path) from exc

    def shape_contributions(self) -> dict[str, bytes]:
        """See :meth:`FleetStore.shape_contributions`."""
        self._store_root.check()
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

    def _completed(self, key: FleetKey) -> tuple[Completed, Path] | None:
        """The key's completion and the artifact directory it names; None while it is not
        complete."""
        done = self._book.completed(self.key_dir(key))
        if done is None:
            return None
        if not done.artifact.startswith(f"{ARTIFACT_PREFIX}{done.generation}.") or (
                "/" in done.artifact):
            raise self._damaged(key, done, f"its completion names {echo(done.artifact)}, no "
                                f"artifact of generation {done.generation}", self.key_dir(key))
        return done, self.key_dir(key) / done.artifact

    def _record(self, key: FleetKey, done: Completed, directory: Path) -> ArtifactRecord:
        path = directory / RECORD_FILE
        record = records.read(path)
        if record is None:  # also when the directory the completion names is gone
            raise self._damaged(key, done, f"{RECORD_FILE} is missing or no JSON object", path)
        try:
            return ArtifactRecord.from_json(record, str(path))
        except StoreFormatError as exc:
            raise self._damaged(key, done, exc.what, path) from exc

    @staticmethod
    def _damaged(key: FleetKey, done: Completed, problem: str, where: Path
                 ) -> DamagedArtifactError:
        return DamagedArtifactError(
            f"the fleet store's artifact of {key.describe()} (generation {done.generation}, "
            f"built by {done.replica!r}) is damaged: {problem}", where=str(where),
            generation=done.generation)

    def _sweep(self, directory: Path, keep: str) -> None:
        """Remove the artifact directories of attempts that did not complete."""
        for name in records.names(directory):
            if name.startswith(ARTIFACT_PREFIX) and name != keep:
                self._remove(directory / name)

    @staticmethod
    def _remove(path: Path) -> None:
        # Nobody reads an artifact that is not complete; what cannot go now goes at a later sweep.
        shutil.rmtree(path, ignore_errors=True)
