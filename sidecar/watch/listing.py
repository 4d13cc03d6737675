"""Reading the incoming base: which ``<model>/<version>/`` directories exist, and what they hold.

Which names are models and versions is decided in one place each
(:mod:`sidecar.tfserving.model_names`, :mod:`sidecar.tfserving.numbering`); this
module applies those rules to what is on disk and says why it refuses a
directory that looks like a model or a version but cannot be served.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sidecar.base.errors import echo
from sidecar.publish.source_links import resolves_within
from sidecar.tfserving.model_names import is_ignored_name, model_name_problem
from sidecar.tfserving.numbering import (
    VersionNumberError,
    clash_error,
    incoming_version_from_name,
    is_version_name,
)

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
    """(model, incoming version, path) of each version directory that can be served, the
    path under the name found on disk (``00000123`` stays ``00000123``)."""

    refused: tuple[Refusal, ...]
    """Model directories with a name outside the rule or linked from outside the base
    (only those holding a version directory: an empty ``lost+found`` is no model), and
    version directories whose name is not a servable number, that are linked from
    outside the base, or that share their number with another (a clash)."""

    clashed: tuple[tuple[str, int], ...] = ()
    """(model, incoming version) for which two or more directories stand (``7`` and
    ``007``): each is refused, so none is built, but the version is still there, so
    nothing built from it is withdrawn."""


def read_incoming(base: Path, *, model: str | None = None) -> IncomingListing:
    """List ``base`` (only ``model``'s directory when given; entries that vanish while
    being listed are left out)."""
    versions: list[tuple[str, int, Path]] = []
    refused: list[Refusal] = []
    clashed: list[tuple[str, int]] = []
    roots = (Path(os.path.realpath(base)),)
    for model_entry in sorted(_scandir(base), key=lambda entry: entry.name):
        if (model is not None and model_entry.name != model) or is_ignored_name(
                model_entry.name) or not _is_dir(model_entry):
            continue
        numeric = sorted((entry for entry in _scandir(Path(model_entry.path))
                          if is_version_name(entry.name) and _is_dir(entry)),
                         key=lambda entry: entry.name)
        problem = model_name_problem(model_entry.name) or _link_problem(model_entry, roots)
        if problem is not None:
            if numeric:
                refused.append(Refusal(Path(model_entry.path), f"model directory {problem}"))
            continue
        by_number: dict[int, list[os.DirEntry[str]]] = {}
        for version_entry in numeric:
            try:
                version = incoming_version_from_name(version_entry.name)
            except VersionNumberError as exc:
                refused.append(Refusal(Path(version_entry.path), str(exc)))
                continue
            by_number.setdefault(version, []).append(version_entry)
        for version, entries in sorted(by_number.items()):
            if len(entries) > 1:
                clash = str(clash_error([entry.name for entry in entries], version))
                refused.extend(Refusal(Path(entry.path), clash) for entry in entries)
                clashed.append((model_entry.name, version))
                continue
            link = _link_problem(entries[0], roots)
            if link is not None:
                refused.append(Refusal(Path(entries[0].path), f"version directory {link}"))
                continue
            versions.append((model_entry.name, version, Path(entries[0].path)))
    return IncomingListing(tuple(versions), tuple(refused), tuple(clashed))


def version_dirs(base: Path, model: str, version: int) -> list[Path]:
    """Every directory in ``base/<model>`` whose name TF Serving reads as incoming
    ``version``, under that name, sorted: none, the one (``7`` or ``0007``), or a clash."""
    return sorted(Path(entry.path) for entry in _scandir(base / model)
                  if _number(entry.name) == version and _is_dir(entry))


def incoming_version_dir(base: Path, model: str, version: int) -> Path | None:
    """The directory that stands for incoming ``version`` of ``model``, under the name
    found on disk; None when there is none, or more than one (a clash)."""
    found = version_dirs(base, model, version)
    return found[0] if len(found) == 1 else None


def version_refusal(base: Path, model: str, version: int) -> Refusal | None:
    """Why incoming ``version`` of ``model`` is not served although a directory stands for
    it: it is a link leading outside ``base``, or another name stands for the same number
    (``7`` and ``007``). None when there is no such refusal."""
    for refusal in read_incoming(base, model=model).refused:
        if refusal.path.parent == base / model and _number(refusal.path.name) == version:
            return refusal
    return None


def list_version_dirs(base: Path) -> Iterator[tuple[str, int, Path]]:
    """Yield (model, version, path) for each servable version directory under ``base``
    (:func:`read_incoming` says why the others are refused)."""
    yield from read_incoming(base).versions


def fingerprint(version_dir: Path, *, links_within: Path | None = None) -> tuple[FileEntry, ...]:
    """Every file and directory under ``version_dir`` with its size and mtime, sorted.

    Two equal fingerprints taken a settle period apart mean nothing was written
    in between. A symbolic link is described (so re-pointing it is a change) and, when
    it resolves inside ``links_within`` (the incoming base; default ``version_dir``), also
    followed: the files it leads to are part of the version, as publishing copies them.
    """
    entries: list[FileEntry] = []
    roots = (Path(os.path.realpath(links_within or version_dir)),)
    pending = [(version_dir, frozenset({Path(os.path.realpath(version_dir))}))]
    while pending:
        directory, ancestors = pending.pop()
        for entry in _scandir(directory):
            relative = os.path.relpath(entry.path, version_dir)
            try:
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    entries.append((relative, False, info.st_size, info.st_mtime_ns))
                    target = followed_link(Path(entry.path), roots, ancestors)
                    if target is None:
                        continue
                    info = target.stat()
            except FileNotFoundError:
                continue
            is_dir = stat.S_ISDIR(info.st_mode)
            entries.append((relative, is_dir, 0 if is_dir else info.st_size, info.st_mtime_ns))
            if is_dir:
                pending.append((Path(entry.path),
                                ancestors | {Path(os.path.realpath(entry.path))}))
    return tuple(sorted(entries))


def followed_link(link: Path, roots: tuple[Path, ...], ancestors: frozenset[Path]) -> Path | None:
    """Where the symbolic link ``link`` leads, when the sidecar follows it: it resolves
    inside ``roots`` (:func:`~sidecar.publish.source_links.resolves_within`) to something
    that exists and holds neither the link nor any of ``ancestors`` (the resolved
    directories walked to reach it): following such a loop would never end. None for any
    other link (publishing refuses those; a fingerprint describes them)."""
    target = Path(os.path.realpath(link))
    if not target.exists() or not resolves_within(target, roots):
        return None
    here = Path(os.path.realpath(link.parent))
    if any(place.is_relative_to(target) for place in (here, *ancestors)):
        return None
    return target


def _link_problem(entry: os.DirEntry[str], roots: tuple[Path, ...]) -> str | None:
    if not entry.is_symlink() or resolves_within(Path(entry.path), roots):
        return None
    return (f"{echo(entry.name)} is a symbolic link leading outside the incoming base (to "
            f"{echo(Path(os.path.realpath(entry.path)))}); the sidecar reads models only from "
            "inside it: move or bind-mount the model into the incoming base")


def _number(name: str) -> int | None:
    """The incoming version ``name`` stands for; None when it stands for none."""
    if not is_version_name(name):
        return None
    try:
        return incoming_version_from_name(name)
    except VersionNumberError:
        return None


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
