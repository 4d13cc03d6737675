"""Linux inotify through ctypes (stdlib only), used only to wake the rescan loop early.

The rescan stays the source of truth: events can be lost (queue overflow, watch
limits, network filesystems send none), so an event only means "rescan now".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
from pathlib import Path

_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_ONLYDIR = 0x01000000
_WATCH_MASK = (
    _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO
    | _IN_CREATE | _IN_DELETE | _IN_DELETE_SELF | _IN_ONLYDIR
)


class InotifyWakeup:
    """A ``sleep(seconds)`` that returns early when anything changes under a directory tree.

    Use :meth:`open` to get one; it returns None where inotify is unavailable,
    and the caller then sleeps plainly. Call :meth:`close` when done.
    """

    def __init__(self, root: Path, libc: ctypes.CDLL, fd: int) -> None:
        self._root = root
        self._libc = libc
        self._fd = fd

    @classmethod
    def open(cls, root: Path) -> InotifyWakeup | None:
        """An inotify wakeup for ``root``, or None if this system has no inotify."""
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
        return cls(root, libc, fd) if fd >= 0 else None

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; return True if woken early by a change."""
        self._watch_tree()
        readable, _, _ = select.select([self._fd], [], [], seconds)
        if not readable:
            return False
        self._drain()
        return True

    def close(self) -> None:
        """Release the inotify descriptor (and with it every watch)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _watch_tree(self) -> None:
        # Adding a watch twice is harmless (same descriptor), and the kernel drops
        # watches of deleted directories, so the tree is simply re-walked.
        for directory, _, _ in os.walk(self._root):
            result = self._libc.inotify_add_watch(
                self._fd, os.fsencode(directory), ctypes.c_uint32(_WATCH_MASK)
            )
            if result < 0 and ctypes.get_errno() == 28:  # ENOSPC: watch limit reached
                return

    def _drain(self) -> None:
        try:
            while os.read(self._fd, 65536):
                pass
        except BlockingIOError:
            pass
