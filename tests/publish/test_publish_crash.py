"""A real process SIGKILLed at every publish step leaves the old state or the new, never a mix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sidecar.publish import VersionPublisher
from sidecar.state import JobJournal, JobState
from tests.support.disks import tree_listing
from tests.support.serving_poller import ServingPoller

REPO_ROOT = Path(__file__).resolve().parents[2]

BEFORE_RENAME = ["staging-created", "file-copied", "staged", "synced", "journaled-verifying"]
AFTER_RENAME = ["renamed", "published", "journaled-published"]


def run_driver(
    serving: Path, state: Path, source: Path, version: int, pause_at: str | None = None
) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "tests.support.publish_driver",
        "--serving", str(serving), "--state", str(state),
        "--model", "tiny", "--version", str(version), "--source", str(source),
    ]
    if pause_at:
        command += ["--pause-at", pause_at]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)


def kill_when_paused(process: subprocess.Popen[str], step: str) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()  # the driver prints this, then sleeps at the step
    assert line.strip() == f"PAUSED {step}", f"driver said {line!r} instead of pausing at {step}"
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


@pytest.mark.parametrize("step", BEFORE_RENAME + AFTER_RENAME)
def test_sigkill_at_each_step_leaves_old_or_new(
    tmp_path: Path, tiny_model: Path, step: str
) -> None:
    serving, state = tmp_path / "serving", tmp_path / "state"
    VersionPublisher(serving).publish_copy("tiny", 1, tiny_model)  # the old state
    old = tree_listing(serving / "tiny" / "1")

    with ServingPoller(serving, poll_seconds=0.02) as poller:
        kill_when_paused(run_driver(serving, state, tiny_model, 2, pause_at=step), step)

        visible = VersionPublisher(serving).published_versions("tiny")
        if step in BEFORE_RENAME:
            assert visible == [1]  # the old state
        else:
            assert visible == [1, 2]  # the new state, complete
            assert tree_listing(serving / "tiny" / "2") == tree_listing(tiny_model)

        restarted = run_driver(serving, state, tiny_model, 2)  # the sidecar comes back
        output, _ = restarted.communicate(timeout=60)
        assert restarted.returncode == 0, output
        assert output.strip() == "DONE published"
        assert poller.wait_for("tiny", 2)

    assert poller.violations == []
    assert sorted(os.listdir(serving / "tiny")) == ["1", "2"]  # no leftovers
    assert tree_listing(serving / "tiny" / "1") == old
    assert tree_listing(serving / "tiny" / "2") == tree_listing(tiny_model)
    with JobJournal.open(state, clock=time.time) as journal:
        job = journal.get("tiny", 2)
        assert job is not None and job.state is JobState.PUBLISHED
        # Killed before the rename: the job ran again. After it: recovery only finished the record.
        assert job.attempts == (2 if step in BEFORE_RENAME else 1)


def test_published_version_is_not_republished_after_restart(
    tmp_path: Path, tiny_model: Path, broken_model: Path
) -> None:
    serving, state = tmp_path / "serving", tmp_path / "state"
    first = run_driver(serving, state, tiny_model, 5)
    assert first.communicate(timeout=60)[0].strip() == "DONE published"
    published = tree_listing(serving / "tiny" / "5")
    again = run_driver(serving, state, broken_model, 5)  # same number, different content
    assert again.communicate(timeout=60)[0].strip() == "DONE published"
    assert tree_listing(serving / "tiny" / "5") == published
