"""Durable file operations, the one place for them (the converter's saves and the sidecar's
writes): fsync a file, a directory or a tree, replace a file atomically, create one only if
it does not exist, move a directory into place without replacing anything, and directories
that appear whole or not at all.

A leaf package: it imports nothing of the project, so both the converter and the sidecar
stand on it, and its errors are the operating system's own (`FileExistsError`, `OSError`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import pathlib
import secrets
import shutil
from collections.abc import Iterator
from typing import Final

_AT_FDCWD: Final = -100
_RENAME_NOREPLACE: Final = 1


def fsync_file(path: pathlib.Path) -> None:
    """Flush one file's data and metadata to stable storage."""
    _fsync(path, os.O_RDONLY)


def fsync_directory(directory: pathlib.Path) -> None:
    """Flush a directory's entries (names created, renamed or removed in it)."""
    _fsync(directory, os.O_RDONLY | os.O_DIRECTORY)


def fsync_tree(root: pathlib.Path) -> None:
    """Flush every file and directory under `root` (and `root`) to disk.

    Bottom-up, files before their directory, so that once `root` is flushed everything
    in it is. Symbolic links are not followed: a link's target is not part of the tree
    (and a dangling one has nothing to flush)."""
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            path = pathlib.Path(directory, name)
            if not path.is_symlink():
                fsync_file(path)
        fsync_directory(pathlib.Path(directory))


def temporary_prefix(path: pathlib.Path) -> str:
    """How the names of `write_atomically(path)`'s temporary files begin (`.<name>.tmp-`),
    for whoever cleans up after a process that stopped mid-write."""
    return f".{path.name}.tmp-"


def write_atomically(path: pathlib.Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see the old or the new file, never a mix, and
    a crash after the call keeps the new one: a temporary file is written and flushed,
    renamed over `path`, and the directory flushed. On any error the temporary is removed."""
    temporary = path.with_name(f"{temporary_prefix(path)}{secrets.token_hex(4)}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_new(path: pathlib.Path, data: bytes) -> bool:
    """Create `path` holding `data` unless a file of that name exists; True if this call
    created it. Readers never see it half written, and two writers racing (other processes,
    other hosts on a shared volume) cannot both succeed.

    `data` is written and flushed under a temporary name, then `link()`-ed to `path`, which
    fails if `path` exists, atomically at the filesystem's server (NFS v3/v4, CephFS and
    local filesystems alike). An NFS client may resend a LINK whose reply was lost and get
    EEXIST for its own success; the temporary's link count (2) tells. The temporary is
    removed whatever happens (if the filesystem lets it)."""
    temporary = path.with_name(f".{path.name}.new-{secrets.token_hex(6)}")
    try:
        write_atomically(temporary, data)
        try:
            os.link(temporary, path)
            created = True
        except FileExistsError:
            created = os.stat(temporary).st_nlink == 2
    finally:
        # Best effort: a hidden leftover is harmless, and losing `created` to it is not.
        with contextlib.suppress(OSError):
            temporary.unlink()
    fsync_directory(path.parent)
    return created


def rename_no_replace(source: pathlib.Path, target: pathlib.Path) -> None:
    """Rename `source` to `target`; raise FileExistsError if `target` exists.

    Uses `renameat2(RENAME_NOREPLACE)`, which checks and renames in one step. Where the
    kernel or filesystem lacks it (e.g. some network filesystems), falls back to
    check-then-rename, which is only safe with one writer (the sidecar is the only writer
    of its serving base).
    """
    if _renameat2_no_replace(source, target):
        return
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    os.rename(source, target)


@contextlib.contextmanager
def staged_directory(final: pathlib.Path) -> Iterator[pathlib.Path]:
    """Yield a hidden sibling of `final` to fill; on success it is flushed and
    renamed to `final`, on any error removed. `final` must not exist (FileExistsError)."""
    final = final.absolute()
    if final.exists():
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(final))
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.partial-{secrets.token_hex(4)}"
    try:
        yield staging
        fsync_tree(staging)
        os.rename(staging, final)
        fsync_directory(final.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fsync(path: pathlib.Path, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _renameat2_no_replace(source: pathlib.Path, target: pathlib.Path) -> bool:
    """Try renameat2; True if it renamed, False if unavailable. Other errors raise OSError."""
    renameat2 = getattr(_LIBC, "renameat2", None) if _LIBC is not None else None
    if renameat2 is None:
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code), str(source), None, str(target))


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return None


_LIBC: Final = _load_libc()
