"""The sidecar's own directory for temporary files, and the sweep of the ones a killed
sidecar left behind.

The converter makes temporary directories for its work (`tftrt-export-*` for the engine
export's Session process, `tftrt-candidates-*`, `tftrt-timing-*`) through `tempfile`.
A process killed with SIGKILL (or by the OOM killer) never removes them, and in a pod
`/tmp` is an emptyDir that outlives container restarts, so they pile up until the volume
is full. `tftrt-sidecar run` therefore points every temporary file of its process and of
its children (`TMPDIR`) into one directory it owns, `<tmp>/tftrt-sidecar-XXXXXXXX`, and
holds an exclusive `flock` on the `.owner` file in it for as long as it runs. The kernel
drops that lock whatever way the process ends, so at start every such directory whose
lock can be taken belongs to no live process and is removed; a directory of a sidecar
still running (another container sharing the volume) is left alone. Temporary
directories made outside a sidecar (the `tftrt` command line) are never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sidecar.base.errors import StorageError

_LOG = logging.getLogger(__name__)

SCRATCH_PREFIX = "tftrt-sidecar-"
"""The name every sidecar scratch directory starts with."""
OWNER_FILE = ".owner"
"""The file in a scratch directory whose lock its owner holds (its pid is written in it)."""
_NEW_DIRECTORY_GRACE_SECONDS = 60.0
"""A scratch directory without an owner file yet may be a sidecar starting right now."""


def sweep_abandoned(root: Path) -> list[Path]:
    """Remove the scratch directories under `root` that no live process owns; return them."""
    removed: list[Path] = []
    try:
        entries = sorted(root.iterdir())
    except OSError as error:
        _LOG.warning("cannot look for abandoned temporary directories in %s: %s", root, error)
        return removed
    for entry in entries:
        if not entry.name.startswith(SCRATCH_PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        if _abandoned(entry):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        _LOG.warning("removed %d temporary directories left by sidecars that were killed: %s",
                     len(removed), ", ".join(path.name for path in removed))
    return removed


def _abandoned(directory: Path) -> bool:
    try:
        descriptor = os.open(directory / OWNER_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        try:
            age = time.time() - directory.stat().st_mtime
        except OSError:
            return False
        return age > _NEW_DIRECTORY_GRACE_SECONDS
    except OSError:
        return False  # unreadable: not ours to judge
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its owner is alive
    finally:
        os.close(descriptor)  # closing drops the lock we may have taken
    return True


class ScratchDirectory:
    """A temporary-files directory this process owns while it is entered: inside the
    `with` block `tempfile` and child processes (`TMPDIR`) use it; on exit it is removed
    and the previous settings come back. `claim()` sweeps abandoned ones first."""

    def __init__(self, path: Path, owner_descriptor: int) -> None:
        self.path = path
        """The directory."""
        self._owner = owner_descriptor
        self._previous: tuple[str | None, str | None] | None = None

    @classmethod
    def claim(cls, root: Path | None = None) -> ScratchDirectory:
        """Sweep `root` (default: the system's temporary directory), then create and lock a
        new scratch directory in it. Raises StorageError when it cannot be created."""
        base = Path(root) if root is not None else Path(tempfile.gettempdir())
        sweep_abandoned(base)
        try:
            path = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=base))
            descriptor = os.open(path / OWNER_FILE, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise StorageError.from_os_error(
                error, action="create the sidecar's temporary directory", path=base) from error
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        return cls(path, descriptor)

    def __enter__(self) -> ScratchDirectory:
        self._previous = (tempfile.tempdir, os.environ.get("TMPDIR"))
        # Process-wide on purpose: the converter and TensorFlow make their temporary files
        # through tempfile and TMPDIR, and `run` is the one program in this process.
        tempfile.tempdir = str(self.path)
        os.environ["TMPDIR"] = str(self.path)
        return self

    def __exit__(self, *_: object) -> None:
        if self._previous is not None:
            tempfile.tempdir, environ_tmpdir = self._previous
            if environ_tmpdir is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = environ_tmpdir
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._owner)


@contextlib.contextmanager
def owned_temporary_files(root: Path | None = None) -> Iterator[ScratchDirectory | None]:
    """Run the block with a claimed `ScratchDirectory` in use. When none can be made
    (the temporary directory is read-only or full), say so and run the block without
    one: serving must not wait for scratch space, only conversions need it."""
    try:
        scratch = ScratchDirectory.claim(root)
    except StorageError as error:
        _LOG.error("%s; temporary files go to the default place meanwhile, and a killed "
                   "sidecar's are not removed", error)
        yield None
        return
    with scratch:
        yield scratch
