"""Reading the incoming base: which ``<model>/<version>/`` directories exist, and what they hold.

Which names are models and versions is decided in one place each
(:mod:`sidecar.publish.model_names`, :mod:`sidecar.publish.numbering`); this
module applies those rules to what is on disk and says why it refuses a
directory that looks like a model or a version but cannot be served.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sidecar.errors import echo
from sidecar.publish.model_names import is_ignored_name, model_name_problem
from sidecar.publish.numbering import (
    VersionNumberError,
    incoming_version_from_name,
    is_version_name,
)
from sidecar.publish.source_links import resolves_within

FileEntry = tuple[str, bool, int, int]
"""(path relative to the version, is a directory, size in bytes, mtime in ns)."""


@dataclass(frozen=True)
class Refusal:
    """A directory in the incoming base that looks like a model or a version, refused."""

    path: Path
    """The directory (its name as found on disk)."""

    reason: str
    """Why it is not served, and how to fix it."""


@dataclass(frozen=True)
class IncomingListing:
    """One reading of the incoming base."""

    versions: tuple[tuple[str, int, Path], ...]
    """(model, incoming version, path) of each version directory that can be served."""

    refused: tuple[Refusal, ...]
    """Model directories with a name outside the rule or linked from outside the base
    (only those holding an all-digit directory: an empty ``lost+found`` is no model), and
    version directories whose name is not a servable number or that are linked from
    outside the base."""


def read_incoming(base: Path) -> IncomingListing:
    """List ``base`` (entries that vanish while being listed are left out)."""
    versions: list[tuple[str, int, Path]] = []
    refused: list[Refusal] = []
    roots = (Path(os.path.realpath(base)),)
    for model_entry in sorted(_scandir(base), key=lambda entry: entry.name):
        if is_ignored_name(model_entry.name) or not _is_dir(model_entry):
            continue
        numeric = sorted((entry for entry in _scandir(Path(model_entry.path))
                          if is_version_name(entry.name) and _is_dir(entry)),
                         key=lambda entry: entry.name)
        problem = model_name_problem(model_entry.name) or _link_problem(model_entry, roots)
        if problem is not None:
            if numeric:
                refused.append(Refusal(Path(model_entry.path), f"model directory {problem}"))
            continue
        for version_entry in numeric:
            try:
                version = incoming_version_from_name(version_entry.name)
            except VersionNumberError as exc:
                refused.append(Refusal(Path(version_entry.path), str(exc)))
                continue
            link = _link_problem(version_entry, roots)
            if link is not None:
                refused.append(Refusal(Path(version_entry.path), f"version directory {link}"))
                continue
            versions.append((model_entry.name, version, Path(version_entry.path)))
    return IncomingListing(tuple(versions), tuple(refused))


def version_refusal(base: Path, model: str, version: int) -> Refusal | None:
    """Why incoming ``version`` of ``model`` is not served although a directory stands for
    it: ``<version>`` is a link leading outside ``base``, or it is missing and a padded name
    (``0007`` for 7) is there instead. None when there is no such refusal."""
    canonical = base / model / str(version)
    for refusal in read_incoming(base).refused:
        name = refusal.path.name
        if (refusal.path.parent == canonical.parent and is_version_name(name)
                and name.lstrip("0") == str(version).lstrip("0")
                and (name == canonical.name or not canonical.is_dir())):
            return refusal
    return None


def list_version_dirs(base: Path) -> Iterator[tuple[str, int, Path]]:
    """Yield (model, version, path) for each servable version directory under ``base``
    (:func:`read_incoming` says why the others are refused)."""
    yield from read_incoming(base).versions


def fingerprint(version_dir: Path) -> tuple[FileEntry, ...]:
    """Every file and directory under ``version_dir`` with its size and mtime, sorted.

    Two equal fingerprints taken a settle period apart mean nothing was written
    in between. Symbolic links are described, not followed.
    """
    entries: list[FileEntry] = []
    pending = [version_dir]
    while pending:
        directory = pending.pop()
        for entry in _scandir(directory):
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            is_dir = stat.S_ISDIR(info.st_mode)
            relative = os.path.relpath(entry.path, version_dir)
            entries.append((relative, is_dir, 0 if is_dir else info.st_size, info.st_mtime_ns))
            if is_dir:
                pending.append(Path(entry.path))
    return tuple(sorted(entries))


def _link_problem(entry: os.DirEntry[str], roots: tuple[Path, ...]) -> str | None:
    if not entry.is_symlink() or resolves_within(Path(entry.path), roots):
        return None
    return (f"{echo(entry.name)} is a symbolic link leading outside the incoming base (to "
            f"{echo(os.path.realpath(entry.path))}); the sidecar reads models only from inside "
            "it: move or bind-mount the model into the incoming base")


def _scandir(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False
