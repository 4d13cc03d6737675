"""Temporary directories of a killed sidecar: ``tftrt-sidecar run`` keeps its temporary
files in a directory it owns and removes, at start, the ones no live process owns. Real
processes, real SIGKILLs, a real conversion."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.base.scratch import (
    OWNER_FILE,
    SCRATCH_PREFIX,
    ScratchDirectory,
    owned_temporary_files,
    sweep_abandoned,
)
from sidecar.publish import VersionPublisher
from sidecar.tfserving.numbering import converted_form, served_version
from tests.e2e.test_sidecar_run import REPO_ROOT, SIDECAR, directory_flags
from tests.support.builders import land
from tests.support.waiting import wait_until

_HOLDER = """
import sys, time
from pathlib import Path
from sidecar.base.scratch import ScratchDirectory
with ScratchDirectory.claim(Path(sys.argv[1])) as scratch:
    (scratch.path / "tftrt-export-held").mkdir()
    print(scratch.path, flush=True)
    time.sleep(600)  # holds the directory until the test kills it
"""


def _holder(root: Path) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen([sys.executable, "-c", _HOLDER, str(root)], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


@pytest.fixture()
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_only_directories_of_dead_owners_are_swept(
    tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    alive, alive_dir = _holder(tmp_path)
    killed, killed_dir = _holder(tmp_path)
    holders.extend([alive, killed])
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(10) == -signal.SIGKILL
    assert (killed_dir / "tftrt-export-held").is_dir(), "SIGKILL left it behind"
    unrelated = tmp_path / "tftrt-export-abc"  # not a sidecar's: never touched
    unrelated.mkdir()

    assert sweep_abandoned(tmp_path) == [killed_dir]
    assert not killed_dir.exists()
    assert (alive_dir / "tftrt-export-held").is_dir() and unrelated.is_dir()

    alive.send_signal(signal.SIGKILL)
    alive.wait(10)
    before = os.environ.get("TMPDIR")
    with ScratchDirectory.claim(tmp_path) as scratch:  # the next start sweeps it
        assert not alive_dir.exists()
        assert (scratch.path / OWNER_FILE).read_text() == f"{os.getpid()}\n"
        assert os.environ["TMPDIR"] == str(scratch.path)
    assert not scratch.path.exists()
    assert os.environ.get("TMPDIR") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tftrt-export-abc"]


def _converter_directories(tmp_root: Path) -> list[Path]:
    """The converter's temporary directories (tftrt-export-*, tftrt-timing-*, ...) in a
    sidecar's scratch directory."""
    return sorted(tmp_root.glob(f"{SCRATCH_PREFIX}*/tftrt-*"))


def test_a_sidecar_killed_while_converting_leaves_nothing_after_restart(
    tmp_path: Path, mlp_model: Path
) -> None:
    tmp_root = tmp_path / "tmp"
    tmp_root.mkdir()
    land(mlp_model, tmp_path / "incoming", "alpha", 1)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TMPDIR": str(tmp_root)}
    command = [str(SIDECAR), "run", "--once", *directory_flags(tmp_path)]
    # Its own session, so the SIGKILL takes the converter's Session processes too, as a
    # container kill does.
    first = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def converting() -> list[Path]:
            assert first.poll() is None, "the sidecar ended before converting"
            return _converter_directories(tmp_root)

        wait_until(converting, 240, "a conversion started")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    assert _converter_directories(tmp_root), "the SIGKILL left nothing to clean"

    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "temporary directories left by sidecars that were killed" in done.stderr
    # The original was served first; the restart built its converted form.
    assert VersionPublisher(tmp_path / "serving").published_versions("alpha") == \
        [served_version(1), converted_form(served_version(1))]
    assert list(tmp_root.iterdir()) == [], "temporary files were left behind"


def test_without_a_writable_temporary_directory_the_block_still_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    read_only = tmp_path / "ro"
    read_only.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)],
                   check=True)
    try:
        before = tempfile.gettempdir()
        with owned_temporary_files(read_only) as scratch:
            assert scratch is None
            assert tempfile.gettempdir() == before
        assert "could not create the sidecar's temporary directory" in caplog.text
        assert "Read-only file system" in caplog.text
    finally:
        subprocess.run(["umount", str(read_only)], check=True)
