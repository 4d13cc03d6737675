"""An artifact's manifest: each file of its version tree with its size and sha256, and each
symbolic link with its target; taken by the copy that moves the tree.

The builder takes it while it copies its published version into the store, so it is the
digest of the bytes the builder verified and published, not of whatever reached the
volume; it goes into ``artifact.json`` before the completion marker. An installer takes one
of the bytes it copies out of the store and compares the two (:meth:`Manifest.difference`):
a file changed, cut short, missing or added after completion is found, by name, before
anything is published. Each file is read once either way (hashed as it is copied).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

_CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    """One file's size and content digest."""

    size: int
    """Bytes."""

    sha256: str
    """The sha256 of its bytes, in hex."""


@dataclass(frozen=True)
class Manifest:
    """The files and links of a version tree, by path relative to its root (``/``-separated)."""

    files: Mapping[str, FileDigest]
    """Every regular file."""

    links: Mapping[str, str]
    """Every symbolic link, with its target (links are copied as links, never followed)."""

    def to_json(self) -> dict[str, Any]:
        """The manifest as ``artifact.json`` holds it."""
        return {"files": {path: {"size": d.size, "sha256": d.sha256}
                          for path, d in sorted(self.files.items())},
                "links": dict(sorted(self.links.items()))}

    @classmethod
    def from_json(cls, value: Any) -> Manifest:
        """Inverse of :meth:`to_json`; KeyError, TypeError or ValueError when it is not one."""
        files = {str(path): FileDigest(_count(entry["size"]), _hex(entry["sha256"]))
                 for path, entry in dict(value["files"]).items()}
        links = {str(path): str(target) for path, target in dict(value["links"]).items()}
        return cls(MappingProxyType(files), MappingProxyType(links))

    def difference(self, found: Manifest) -> str | None:
        """What in ``found`` (a copy's manifest) differs from this one, the manifest its
        builder recorded; None when nothing does. Names the first differing path (in name
        order) and how many more there are."""
        problems = []
        for path in sorted(self.files.keys() | found.files.keys()):
            want, got = self.files.get(path), found.files.get(path)
            if got is None:
                problems.append(f"{path} is missing")
            elif want is None:
                problems.append(f"{path} is a file its builder did not write")
            elif got.size != want.size:
                problems.append(f"{path} holds {got.size} bytes, its builder wrote {want.size}")
            elif got.sha256 != want.sha256:
                problems.append(f"{path} differs from the bytes its builder wrote (sha256 "
                                f"{got.sha256[:12]}..., recorded {want.sha256[:12]}...)")
        for path in sorted(self.links.keys() | found.links.keys()):
            if self.links.get(path) != found.links.get(path):
                problems.append(f"link {path} points to {found.links.get(path)!r}, its builder "
                                f"wrote {self.links.get(path)!r}")
        if not problems:
            return None
        more = f" (and {len(problems) - 1} more difference(s))" if len(problems) > 1 else ""
        return problems[0] + more


def copy_tree(source: Path, target: Path) -> Manifest:
    """Copy the tree at ``source`` into ``target`` (created if missing; its parent must
    exist), links as links, file modes and times kept; the manifest of what was read.

    The first OSError propagates with its errno (``shutil.copytree`` would bundle them).
    """
    files: dict[str, FileDigest] = {}
    links: dict[str, str] = {}
    for directory, subdirectories, names in os.walk(source, onerror=_raise):
        subdirectories.sort()
        relative = os.path.relpath(directory, source)
        here = target / relative
        # Top-down, so each parent exists; never parents=True, which would rebuild a key's
        # directory (and the store above it) deleted mid-copy.
        here.mkdir(exist_ok=True)
        linked = [d for d in subdirectories if os.path.islink(Path(directory, d))]
        for name in sorted([*names, *linked]):
            path = Path(directory, name)
            key = Path(relative, name).as_posix()
            if path.is_symlink():
                links[key] = os.readlink(path)
                os.symlink(links[key], here / name)
            else:
                files[key] = _copy_file(path, here / name)
    return Manifest(MappingProxyType(files), MappingProxyType(links))


def _copy_file(source: Path, target: Path) -> FileDigest:
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as reading, target.open("xb") as writing:
        while chunk := reading.read(_CHUNK):
            digest.update(chunk)
            writing.write(chunk)
            size += len(chunk)
    shutil.copystat(source, target)
    return FileDigest(size, digest.hexdigest())


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"file size {value!r} is not a byte count")
    return value


def _hex(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 64 or value.strip("0123456789abcdef"):
        raise ValueError(f"digest {value!r} is not a sha256 in hex")
    return value


def _raise(error: OSError) -> None:
    raise error  # os.walk would skip what it cannot list (a missing version, a lost mount)
