"""A content fingerprint of an incoming version, so a job can tell that its input changed.

A job takes it when it starts and again before it publishes; a difference means the
version directory was replaced or rewritten under the job (the job then starts
again). The journal keeps the published one, so a withdrawn version is restored only
when the same content comes back. Names, kinds and bytes count; times do not, so a
copy of the same model matches. A symbolic link the sidecar follows (one resolving
inside the incoming base) counts as the content it leads to, as publishing copies it:
re-pointing a linked ``variables/`` at other weights is a change, and a linked version
matches its own published copy. Any other link counts as its target's name (publishing
refuses it anyway).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final

from sidecar.watch.listing import followed_link

_CHUNK: Final = 1 << 20


def content_fingerprint(version_dir: Path, *, links_within: Path | None = None) -> str:
    """The sha256 (hex) of every directory, file (with its bytes) and symbolic link under
    ``version_dir``, in name order; a link resolving inside ``links_within`` (the incoming
    base; default ``version_dir``) as what it leads to, any other by its target's name.

    Raises OSError when the tree cannot be read (FileNotFoundError once it is gone).
    """
    digest = hashlib.sha256()
    if not version_dir.is_dir():
        raise FileNotFoundError(2, "the version directory is gone", str(version_dir))
    roots = (Path(os.path.realpath(links_within or version_dir)),)
    _add_directory(digest, version_dir, ".", roots,
                   frozenset({Path(os.path.realpath(version_dir))}))
    return digest.hexdigest()


def _add_directory(digest: hashlib._Hash, directory: Path, relative: str,
                   roots: tuple[Path, ...], ancestors: frozenset[Path]) -> None:
    """Hash ``directory``, then its files and unfollowed links, then its directories, each
    group in name order (the order ``os.walk`` gives, so a tree without links keeps the
    fingerprint earlier releases recorded)."""
    digest.update(b"d\0" + os.fsencode(relative) + b"\0")
    with os.scandir(directory) as scanned:
        entries = sorted(scanned, key=lambda entry: entry.name)
    leaves: list[tuple[str, Path, Path | None]] = []
    directories: list[tuple[str, Path]] = []
    for entry in entries:
        path = Path(entry.path)
        target = followed_link(path, roots, ancestors) if entry.is_symlink() else path
        if target is not None and target.is_dir():
            directories.append((entry.name, path))
        else:
            leaves.append((entry.name, path, target))
    for name, path, target in leaves:
        entry_name = os.fsencode(os.path.join(relative, name))
        if target is None:
            digest.update(b"l\0" + entry_name + b"\0" + os.fsencode(os.readlink(path)) + b"\0")
            continue
        with target.open("rb") as source:
            size = os.fstat(source.fileno()).st_size
            digest.update(b"f\0" + entry_name + b"\0" + str(size).encode() + b"\0")
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
    for name, path in directories:
        below = name if relative == "." else os.path.join(relative, name)
        _add_directory(digest, path, below, roots,
                       ancestors | {Path(os.path.realpath(path))})
