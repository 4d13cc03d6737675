"""Taking versions out of TF Serving's view: retention, withdrawal and rollback.

Each one renames the version to a non-numeric name (one atomic step for TF
Serving, which then unloads it). Retention then deletes it, so TF Serving never
sees a half-deleted version; withdrawal and rollback keep it under that name
(``.withdrawn-<version>``, ``.rolled-back-<version>``), where it can be renamed
back. None of them takes away the only servable version.

Retention counts served numbers, newest first, with one exception: an original served
first (``serve_original_first``) whose incoming version has a later build in view (its
converted form took over) is kept beside the ``keep`` newest without counting, while its
incoming version is the newest in view. It is the converted form's rollback target: the
same model, unconverted, that TF Serving already served; counting it would instead
retire the previous incoming version (with the default ``keep_versions = 2``), the
rollback target for a bad model. Once a newer incoming version is in view, it counts
like any other version (and so leaves first).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from durable import fsync_directory, rename_no_replace
from sidecar.base.errors import OnlyServableVersionError, StorageError, UserError
from sidecar.base.faults import FaultArea
from sidecar.tfserving import layout, numbering


@dataclass(frozen=True)
class RolledBack:
    """The result of :func:`roll_back_newest` and :func:`roll_back_version`."""

    version: int
    """The version taken out of view."""

    moved_to: Path
    """Where it is kept (a ``.rolled-back-<version>`` name TF Serving ignores)."""

    now_serving: int
    """The newest version left, which TF Serving serves (instead, if it was the newest)."""


def apply_retention(
    model_dir: Path, keep: int, *, served_first: Collection[int] = (),
    token: Callable[[], str] = layout.random_token,
) -> list[int]:
    """Remove all but the newest ``keep`` versions (at least one is always kept), and the
    rollback target of the newest incoming version's converted form beside them (see the
    module's text): one of ``served_first``, the originals that were served first.

    Returns the removed versions, oldest first.
    """
    versions = layout.published_versions(model_dir)
    beside = rollback_target(versions, served_first)
    counted = [version for version in versions if version != beside]
    doomed = counted[: max(0, len(counted) - max(keep, 1))]
    for version in doomed:
        _remove(model_dir, version, token())
    return doomed


def rollback_target(versions: Collection[int], served_first: Collection[int]) -> int | None:
    """The original served first that retention keeps beside the newest ``versions`` (in
    view): the one of the newest incoming version, once a later build of it is in view."""
    if not versions:
        return None
    newest = max(versions)
    incoming = numbering.incoming_version(newest)
    originals = [v for v in served_first if v in versions and v < newest
                 and numbering.incoming_version(v) == incoming]
    return max(originals, default=None)


def withdraw_version(
    model_dir: Path, version: int, *, token: Callable[[], str] = layout.random_token
) -> Path | None:
    """Move one version (e.g. gone from incoming) out of TF Serving's view, keeping it as
    ``.withdrawn-<version>`` (a suffix is added if that name is taken); return where it
    went, or None if it was not published. Nothing is deleted: :func:`restore_withdrawn`
    (or ``mv .withdrawn-<version> <version>``) brings it back.

    Raises OnlyServableVersionError if it is the model's only version.
    """
    versions = layout.published_versions(model_dir)
    if version not in versions:
        return None
    if versions == [version]:
        raise OnlyServableVersionError(
            model_dir.name, version, "withdraw", model_dir / str(version)
        )
    kept = model_dir / f"{layout.WITHDRAWN_PREFIX}{version}"
    if os.path.lexists(kept):
        kept = model_dir / f"{layout.WITHDRAWN_PREFIX}{version}-{token()}"
    _move_out_of_view(model_dir / str(version), kept)
    return kept


def restore_withdrawn(model_dir: Path, version: int) -> Path | None:
    """Rename a withdrawn ``version`` back into view; return its path, or None when there
    is no ``.withdrawn-<version>`` to restore (or the number is in view already)."""
    kept = model_dir / f"{layout.WITHDRAWN_PREFIX}{version}"
    target = model_dir / str(version)
    if not kept.is_dir() or os.path.lexists(target):
        return None
    try:
        rename_no_replace(kept, target)
        fsync_directory(model_dir)
    except FileExistsError:
        return None
    except OSError as exc:
        raise StorageError.from_os_error(
            exc, action=f"restore withdrawn version {version} into view", path=kept,
            area=FaultArea.SERVING,
        ) from exc
    return target


def roll_back_newest(
    model_dir: Path, *, token: Callable[[], str] = layout.random_token
) -> RolledBack:
    """Move the newest version out of view so TF Serving serves the one before it.

    It is kept as ``.rolled-back-<version>`` (a suffix is added if that name is
    taken). Raises OnlyServableVersionError if it is the only version.
    """
    newest = newest_to_roll_back(model_dir)
    return _roll_back(model_dir, newest, layout.published_versions(model_dir), token())


def newest_to_roll_back(model_dir: Path) -> int:
    """The version :func:`roll_back_newest` would move, checked without moving it (a fleet
    records the rollback before the move).

    Raises UserError when there is none, OnlyServableVersionError if it is the only one.
    """
    versions = layout.published_versions(model_dir)
    if not versions:
        raise UserError(
            f"model {model_dir.name!r} has no published version to roll back",
            where=str(model_dir),
            fix="check the model name",
        )
    newest = versions[-1]
    if len(versions) == 1:
        raise OnlyServableVersionError(model_dir.name, newest, "roll back", model_dir / str(newest))
    return newest


def roll_back_version(
    model_dir: Path, version: int, *, token: Callable[[], str] = layout.random_token
) -> RolledBack | None:
    """Move ``version`` out of view (kept as ``.rolled-back-<version>``, a suffix added if
    that name is taken); None when it is not in view.

    Raises OnlyServableVersionError if it is the model's only version.
    """
    versions = layout.published_versions(model_dir)
    if version not in versions:
        return None
    return _roll_back(model_dir, version, versions, token())


def _roll_back(model_dir: Path, version: int, versions: list[int], token: str) -> RolledBack:
    """Move ``version``, one of the model's ``versions``, to ``.rolled-back-<version>``."""
    left = [v for v in versions if v != version]
    if not left:
        raise OnlyServableVersionError(
            model_dir.name, version, "roll back", model_dir / str(version))
    kept = model_dir / f"{layout.ROLLED_BACK_PREFIX}{version}"
    if os.path.lexists(kept):
        kept = model_dir / f"{layout.ROLLED_BACK_PREFIX}{version}-{token}"
    _move_out_of_view(model_dir / str(version), kept)
    return RolledBack(version=version, moved_to=kept, now_serving=left[-1])


def _remove(model_dir: Path, version: int, token: str) -> None:
    hidden = model_dir / layout.removing_name(version, token)
    _move_out_of_view(model_dir / str(version), hidden)
    # A failure here leaves only a hidden name; clean_leftovers() retries it.
    shutil.rmtree(hidden, ignore_errors=True)


def _move_out_of_view(source: Path, hidden: Path) -> None:
    try:
        rename_no_replace(source, hidden)
        fsync_directory(source.parent)
    except OSError as exc:
        raise StorageError.from_os_error(
            exc, action=f"move {source.name} out of TF Serving's view", path=source,
            area=FaultArea.SERVING,
        ) from exc
