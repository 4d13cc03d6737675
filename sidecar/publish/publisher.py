"""Publishing a finished SavedModel into ``serving/<model>/<version>`` atomically.

The version is written under a hidden staging name inside ``serving/<model>/``
(same filesystem, ignored by TF Serving), every file and directory is fsynced,
and one rename makes it visible. A crash before the rename leaves only a
staging directory, which :meth:`VersionPublisher.clean_leftovers` deletes on the
next start; after it, the complete version.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from durable import fsync_directory, fsync_tree, rename_no_replace
from sidecar.base.errors import StagingError, StorageError, VersionAlreadyPublishedError, echo
from sidecar.base.faults import FaultArea
from sidecar.publish.source_links import check_source_links
from sidecar.tfserving import layout
from sidecar.tfserving.model_names import MODEL_NAME_RULE, is_model_name
from sidecar.tfserving.numbering import MAX_SERVED_VERSION

Checkpoint = Callable[[str], None]
"""Called with a step name as publishing passes it: "staging-created", "file-copied",
"staged", "synced", "renamed", "published" (for metrics, logs and crash tests)."""


def no_checkpoint(step: str) -> None:
    """The :data:`Checkpoint` of a run nobody watches step by step: does nothing."""


class VersionPublisher:
    """Publishes versions into one serving base; the only writer of numeric names there."""

    def __init__(
        self,
        serving_base: Path,
        *,
        token: Callable[[], str] = layout.random_token,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self._base = serving_base
        self._token = token
        self._checkpoint = checkpoint

    @property
    def serving_base(self) -> Path:
        """The directory holding ``<model>/<version>/``."""
        return self._base

    def model_dir(self, model: str) -> Path:
        """TF Serving's base path for ``model``."""
        return self._base / model

    def version_dir(self, model: str, version: int) -> Path:
        """Where ``version`` of ``model`` is (or would be) published."""
        return self._base / model / str(version)

    def published_versions(self, model: str) -> list[int]:
        """Versions of ``model`` TF Serving can see, ascending."""
        return layout.published_versions(self.model_dir(model))

    def serves(self, model: str) -> bool:
        """Whether TF Serving can see any version of ``model``."""
        return bool(self.published_versions(model))

    def is_published(self, model: str, version: int) -> bool:
        """Whether ``version`` of ``model`` is in the serving base."""
        return os.path.lexists(self.version_dir(model, version))

    def models(self) -> list[str]:
        """Models with at least one published version, sorted."""
        return layout.published_models(self._base)

    def stage(self, model: str, version: int) -> StagedVersion:
        """Create an empty staging directory for ``version``; write the model into ``.path``.

        Raises VersionAlreadyPublishedError if the version is already published.
        """
        if not is_model_name(model) or not 0 <= version <= MAX_SERVED_VERSION:
            raise StagingError(
                f"cannot publish model {echo(model)} version {version}",
                where=str(self._base),
                fix=f"model names: {MODEL_NAME_RULE}; versions: 0 to {MAX_SERVED_VERSION}",
            )
        if self.is_published(model, version):
            raise VersionAlreadyPublishedError(model, version, self.version_dir(model, version))
        model_dir = self.model_dir(model)
        path = model_dir / layout.staging_name(version, self._token())
        try:
            new_model = not model_dir.exists()
            model_dir.mkdir(parents=True, exist_ok=True)
            if new_model:
                fsync_directory(self._base)
            path.mkdir()
        except OSError as exc:
            raise StorageError.from_os_error(
                exc, action="create a staging directory", path=path, area=FaultArea.SERVING
            ) from exc
        self._checkpoint("staging-created")
        return StagedVersion(self, model, version, path)

    def publish_copy(
        self, model: str, version: int, source: Path, *, links_within: Path | None = None
    ) -> Path:
        """Copy the SavedModel at ``source`` into staging and publish it; return its path
        (symbolic links as :meth:`StagedVersion.copy_from` follows them)."""
        with self.stage(model, version) as staged:
            staged.copy_from(source, links_within=links_within)
            return staged.commit()

    def clean_leftovers(self) -> list[Path]:
        """Delete staging and half-removed directories left by a stopped process.

        Call on start, before any publishing; returns what was deleted.
        """
        removed: list[Path] = []
        try:
            models = [m for m in os.listdir(self._base) if is_model_name(m)]
        except FileNotFoundError:
            return removed
        for model in models:
            model_dir = self.model_dir(model)
            if not model_dir.is_dir():
                continue
            for name in os.listdir(model_dir):
                if layout.is_leftover_name(name):
                    path = model_dir / name
                    _remove_tree(path)
                    removed.append(path)
        return removed

    def _commit(self, staged: StagedVersion) -> Path:
        target = self.version_dir(staged.model, staged.version)
        if self.is_published(staged.model, staged.version):
            raise VersionAlreadyPublishedError(staged.model, staged.version, target)
        self._checkpoint("staged")
        try:
            fsync_tree(staged.path)
        except OSError as exc:
            raise StorageError.from_os_error(
                exc, action="flush the staged version to disk", path=staged.path,
                area=FaultArea.SERVING,
            ) from exc
        self._checkpoint("synced")
        try:
            rename_no_replace(staged.path, target)
        except FileExistsError as exc:
            raise VersionAlreadyPublishedError(staged.model, staged.version, target) from exc
        except OSError as exc:
            raise StorageError.from_os_error(
                exc, action="rename the staged version into place", path=target,
                area=FaultArea.SERVING,
            ) from exc
        self._checkpoint("renamed")
        try:
            fsync_directory(target.parent)
        except OSError as exc:
            raise StorageError.from_os_error(
                exc, action="flush the new version's directory entry (it is visible)",
                path=target.parent, area=FaultArea.SERVING,
            ) from exc
        self._checkpoint("published")
        return target


class StagedVersion:
    """A version being written under a hidden name; :meth:`commit` publishes it.

    As a context manager it deletes the staging directory unless committed, and
    turns an OSError raised inside the block (disk full, permission denied) into
    a StorageError naming the staging directory.
    """

    def __init__(self, publisher: VersionPublisher, model: str, version: int, path: Path):
        self._publisher = publisher
        self.model = model
        """Model name."""
        self.version = version
        """Version number it will be published under."""
        self.path = path
        """The staging directory to write the SavedModel into."""
        self._finished = False

    def copy_from(self, source: Path, *, links_within: Path | None = None) -> None:
        """Copy the tree at ``source`` into the staging directory.

        Symbolic links are followed where :mod:`sidecar.publish.source_links` allows
        (targets inside ``links_within``, default ``source``), so the copy holds their
        content and no link; any other link raises SourceLinkError before a byte is
        copied. The first OSError (e.g. ENOSPC) stops the copy and propagates as is
        (``shutil.copytree`` would bundle errors and lose the errno).
        """
        check_source_links(source, links_within or source)
        for directory, _, files in os.walk(source, followlinks=True):
            target = self.path / os.path.relpath(directory, source)
            target.mkdir(exist_ok=True)
            for name in files:
                shutil.copy2(os.path.join(directory, name), target / name)
                self._publisher._checkpoint("file-copied")

    def commit(self) -> Path:
        """fsync everything, rename into ``<model>/<version>``; return that path.

        On any error the staging directory is deleted and nothing is visible:
        VersionAlreadyPublishedError if the number got taken, StorageError for
        the filesystem.
        """
        if self._finished:
            raise StagingError(
                f"staged version {self.model}/{self.version} was already committed or abandoned",
                where=str(self.path),
                fix="stage the version again",
            )
        try:
            published = self._publisher._commit(self)
        except BaseException:
            self.abandon()
            raise
        self._finished = True
        return published

    def abandon(self) -> None:
        """Delete the staging directory (idempotent)."""
        if not self._finished:
            self._finished = True
            _remove_tree(self.path)

    def __enter__(self) -> StagedVersion:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.abandon()
        if isinstance(exc, OSError):
            raise StorageError.from_os_error(
                exc, action=f"write {self.model} version {self.version} into staging",
                path=self.path, area=FaultArea.SERVING,
            ) from exc


def _remove_tree(path: Path) -> None:
    # Already out of TF Serving's view; whatever cannot be deleted now is retried
    # by clean_leftovers() on the next start.
    shutil.rmtree(path, ignore_errors=True)
