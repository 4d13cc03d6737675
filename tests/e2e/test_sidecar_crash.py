"""``tftrt-sidecar run`` SIGKILLed at pipeline steps, then restarted: the version ends
published, nothing partial is ever visible, and a published version is never redone; an
original served first stays served and the restart completes its conversion."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.publish import VersionPublisher
from sidecar.state import Flavour, JobJournal, JobState
from sidecar.tfserving.numbering import served_version
from tests.e2e.test_sidecar_run import REPO_ROOT, directory_flags, hidden_entries, run_sidecar
from tests.support.builders import land
from tests.support.disks import tree_listing
from tests.support.serving_poller import ServingPoller

BEFORE_RENAME = ["job-building", "job-flavour-chosen"]
AFTER_RENAME = ["renamed"]


def kill_at(step: str, root: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.pausing_sidecar", step, "run", "--once",
         *directory_flags(root)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != f"PAUSED {step}":
        process.kill()
        pytest.fail(f"the sidecar said {line!r} instead of pausing at {step}")
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


@pytest.mark.usefixtures("one_build")
@pytest.mark.parametrize("step", BEFORE_RENAME + AFTER_RENAME)
def test_sigkill_then_restart_ends_published_once(
    tmp_path: Path, mlp_model: Path, step: str
) -> None:
    served = served_version(1)
    land(mlp_model, tmp_path / "incoming", "alpha", 1)
    serving = tmp_path / "serving"
    with ServingPoller(serving, poll_seconds=0.05) as poller:
        kill_at(step, tmp_path)
        visible = VersionPublisher(serving).published_versions("alpha")
        assert visible == ([] if step in BEFORE_RENAME else [served])
        first = tree_listing(serving / "alpha" / str(served)) if visible else None

        done = run_sidecar("--once", *directory_flags(tmp_path))
        assert done.returncode == 0, done.stderr[-3000:]
        assert poller.wait_for("alpha", served)

    assert poller.violations == []
    assert hidden_entries(serving) == []
    with JobJournal.open(tmp_path / "state", clock=lambda: 0.0) as journal:
        job = journal.get("alpha", served)
        history = [t.to_state for t in journal.history("alpha", served)]
    assert job is not None and job.state is JobState.PUBLISHED
    assert job.flavour is Flavour.CONVERTED
    if first is not None:
        assert job.attempts == 1  # recovery finished the record; nothing was redone
        assert tree_listing(serving / "alpha" / str(served)) == first
        assert "nothing to do" in done.stdout
    else:
        assert job.attempts == 2  # restarted from the beginning
        assert history.count(JobState.DISCOVERED) == 2


# "renamed" first passes as the original served first is renamed into place (before the
# journal records it PUBLISHED); "job-building" only in its converted form's job.
@pytest.mark.parametrize("step", ["renamed", "job-building"])
def test_sigkill_after_the_original_was_served_first_keeps_it_and_the_restart_converts(
    tmp_path: Path, mlp_model: Path, step: str
) -> None:
    original, converted = served_version(1), served_version(1) + 1
    land(mlp_model, tmp_path / "incoming", "alpha", 1)
    serving = tmp_path / "serving"
    with ServingPoller(serving, poll_seconds=0.05) as poller:
        kill_at(step, tmp_path)
        assert VersionPublisher(serving).published_versions("alpha") == [original]
        first = tree_listing(serving / "alpha" / str(original))

        done = run_sidecar("--once", *directory_flags(tmp_path))
        assert done.returncode == 0, done.stderr[-3000:]
        assert poller.wait_for("alpha", converted)

    assert poller.violations == []
    assert hidden_entries(serving) == []
    assert VersionPublisher(serving).published_versions("alpha") == [original, converted]
    assert tree_listing(serving / "alpha" / str(original)) == first  # never published twice
    with JobJournal.open(tmp_path / "state", clock=lambda: 0.0) as journal:
        served_first, conversion = journal.get("alpha", original), journal.get("alpha", converted)
    assert served_first is not None and served_first.state is JobState.PUBLISHED
    assert served_first.flavour is Flavour.ORIGINAL and served_first.converted_as == converted
    assert served_first.attempts == 1
    assert conversion is not None and conversion.state is JobState.PUBLISHED
    assert conversion.flavour is Flavour.CONVERTED
    assert conversion.attempts == (1 if step == "renamed" else 2)  # restarted from the start
