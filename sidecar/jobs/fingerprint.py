"""A content fingerprint of an incoming version, so a job can tell that its input changed.

A job takes it when it starts and again before it publishes; a difference means the
version directory was replaced or rewritten under the job (the job then starts
again). The journal keeps the published one, so a withdrawn version is restored only
when the same content comes back. Names, kinds and bytes count; times do not, so a
copy of the same model matches.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final

_CHUNK: Final = 1 << 20


def content_fingerprint(version_dir: Path) -> str:
    """The sha256 (hex) of every directory, file (with its bytes) and symbolic link (with
    its target, not followed) under ``version_dir``, in name order.

    Raises OSError when the tree cannot be read (FileNotFoundError once it is gone).
    """
    digest = hashlib.sha256()
    if not version_dir.is_dir():
        raise FileNotFoundError(2, "the version directory is gone", str(version_dir))
    for directory, dirs, files in os.walk(version_dir, onerror=_raise):
        dirs.sort()
        relative = os.path.relpath(directory, version_dir)
        digest.update(b"d\0" + os.fsencode(relative) + b"\0")
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]):
            _add_entry(digest, Path(directory, name), os.path.join(relative, name))
    return digest.hexdigest()


def _add_entry(digest: hashlib._Hash, path: Path, relative: str) -> None:
    name = os.fsencode(relative)
    if path.is_symlink():
        digest.update(b"l\0" + name + b"\0" + os.fsencode(os.readlink(path)) + b"\0")
        return
    with path.open("rb") as source:
        size = os.fstat(source.fileno()).st_size
        digest.update(b"f\0" + name + b"\0" + str(size).encode() + b"\0")
        while chunk := source.read(_CHUNK):
            digest.update(chunk)


def _raise(error: OSError) -> None:
    raise error
