"""Real file trees and real disks for the storage tests: a tree's listing, an immutable
directory, a small tmpfs, a full disk (the mounts need root, which these tests run as)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


def tree_listing(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and directory (None) under ``root``."""
    listing: dict[str, bytes | None] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            listing[os.path.relpath(os.path.join(directory, name), root)] = None
        for name in files:
            full = os.path.join(directory, name)
            listing[os.path.relpath(full, root)] = Path(full).read_bytes()
    return listing


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[Path]:
    """Make a directory immutable (chattr +i): even root gets EPERM creating entries in it."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a real tmpfs of ``size`` at ``path`` (needs root, which these tests run as)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def fill_disk(disk: Path, leave: int = 0) -> Path:
    """Write a file on ``disk`` until at most ``leave`` bytes are free (0: until ENOSPC);
    return it (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            stats = os.statvfs(disk)
            room = stats.f_bavail * stats.f_frsize - leave
            if leave and room <= 0:
                break
            os.write(fd, b"\0" * max(min(room, 1 << 20), 4096))
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return filler
