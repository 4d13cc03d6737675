"""Reading the incoming base: which ``<model>/<version>/`` directories exist, and what they hold."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

_VERSION_NAME = re.compile(r"[0-9]{1,18}")
"""A version directory name as TF Serving reads one (fits int64)."""

FileEntry = tuple[str, bool, int, int]
"""(path relative to the version, is a directory, size in bytes, mtime in ns)."""


def parse_version_name(name: str) -> int | None:
    """The version number a directory name stands for, or None when it is not one."""
    return int(name) if _VERSION_NAME.fullmatch(name) else None


def is_model_name(name: str) -> bool:
    """Whether ``name`` can be a model directory (not hidden, not a temporary name)."""
    return bool(name) and not name.startswith((".", "_")) and not name.endswith((".tmp", "~"))


def list_version_dirs(base: Path) -> Iterator[tuple[str, int, Path]]:
    """Yield (model, version, path) for each numeric version directory under ``base``.

    Hidden and temporary model names and non-numeric version names are skipped;
    entries that vanish while being listed are skipped too.
    """
    for model_entry in _scandir(base):
        if not is_model_name(model_entry.name) or not _is_dir(model_entry):
            continue
        for version_entry in _scandir(Path(model_entry.path)):
            version = parse_version_name(version_entry.name)
            if version is not None and _is_dir(version_entry):
                yield model_entry.name, version, Path(version_entry.path)


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
