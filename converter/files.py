"""Durable file operations: fsync, and directories that appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
import shutil
from collections.abc import Iterator

from converter.errors import OutputExistsError


def fsync_tree(root: pathlib.Path) -> None:
    """Flush every file and directory under `root` (and `root`) to disk."""
    for directory, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(directory, name), "rb") as handle:
                os.fsync(handle.fileno())
        fsync_directory(pathlib.Path(directory))


def fsync_directory(directory: pathlib.Path) -> None:
    """Flush a directory's entries (so a rename inside it is durable)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def staged_directory(final: pathlib.Path) -> Iterator[pathlib.Path]:
    """Yield a hidden sibling of `final` to fill; on success it is flushed and
    renamed to `final`, on any error removed. `final` must not exist."""
    final = final.absolute()
    if final.exists():
        raise OutputExistsError(
            f"{final} exists; the converter never overwrites a directory. Pass a new "
            "output directory, or remove the old one first."
        )
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


def write_atomically(path: pathlib.Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see the old or the new file, never a mix."""
    temporary = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
