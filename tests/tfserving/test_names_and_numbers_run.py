"""``tftrt-sidecar run --once`` as a real process over odd names, numbers and links, watched
by the TF Serving stand-in poller (issue 12, items 6-9 end to end)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sidecar.publish import VersionPublisher
from sidecar.state import Flavour, JobJournal, JobState
from sidecar.tfserving.numbering import served_version
from tests.support.builders import land
from tests.support.serving_poller import ServingPoller
from tests.support.session_run import session_outputs

REPO_ROOT = Path(__file__).resolve().parents[2]
SIDECAR = Path(sys.executable).with_name("tftrt-sidecar")
EPOCH_MICROSECONDS = 1_764_547_200_000_000

pytestmark = pytest.mark.usefixtures("one_build")  # the numbers each version's one build gets


def test_odd_names_numbers_and_links_end_to_end(tmp_path: Path, mlp_model: Path) -> None:
    incoming, serving, outside = tmp_path / "incoming", tmp_path / "serving", tmp_path / "secret"
    land(mlp_model, incoming, "clock", EPOCH_MICROSECONDS)
    shutil.copytree(mlp_model, incoming / "clock" / "0007")  # TF Serving's reading: version 7
    shutil.copytree(mlp_model, incoming / "clash" / "4")
    shutil.copytree(mlp_model, incoming / "clash" / "04")
    shutil.copytree(mlp_model, incoming / "my model" / "1")
    # linked/1: its variables/ is a link to an export elsewhere in the incoming base.
    shutil.copytree(mlp_model, incoming / ".shared")
    linked = incoming / "linked" / ".landing"
    shutil.copytree(mlp_model, linked, ignore=shutil.ignore_patterns("variables"))
    (linked / "variables").symlink_to(incoming / ".shared" / "variables")
    os.rename(linked, incoming / "linked" / "1")
    # leak/1: a file linked from outside the incoming base.
    outside.mkdir()
    (outside / "token").write_text("must never reach the serving base")
    leak = land(mlp_model, incoming, "leak", 1)
    (leak / "assets").mkdir(exist_ok=True)
    (leak / "assets" / "token").symlink_to(outside / "token")
    config = tmp_path / "sidecar.toml"
    config.write_text('[models.linked]\nbackend = "tensorrt"\n')  # TF 2.21: the original

    with ServingPoller(serving, poll_seconds=0.1) as poller:
        done = subprocess.run(
            [str(SIDECAR), "run", "--once", "--config", str(config),
             "--incoming", str(incoming), "--serving", str(serving),
             "--state", str(tmp_path / "state"), "--engine-cache", str(tmp_path / "cache"),
             "--model-config-file", str(serving / "models.config"),
             "--settle-seconds", "0.3", "--rescan-interval-seconds", "0.1"],
            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True, text=True, timeout=300, check=False,
        )
        served = served_version(EPOCH_MICROSECONDS)
        assert poller.wait_for("clock", served) and poller.wait_for("linked", 1000)
    assert done.returncode == 3, done.stderr[-3000:]  # leak failed; the others went on
    assert poller.violations == []

    # Item 6: the 19-digit served number is published, listed and in the model config.
    assert len(str(served)) == 19
    publisher = VersionPublisher(serving)
    assert publisher.published_versions("clock") == [served_version(7), served]
    assert publisher.models() == ["clock", "linked"]
    model_config = (serving / "models.config").read_text()
    assert 'name: "clock"' in model_config and 'name: "linked"' in model_config
    # Items 7 and 8: refused with reasons in the log, never published (issue 24, item 1: a
    # padded name is read as TF Serving reads it; only two names for one number are refused).
    assert "'04' and '4' both stand for version 4" in done.stderr
    assert "TF Serving itself would serve '4'" in done.stderr
    assert not (serving / "clash").exists()
    assert "'my model' is not a model name the sidecar serves" in done.stderr
    assert not (serving / "my model").exists()

    # Item 9: the linked variables/ were published as their content, and load.
    with JobJournal.open(tmp_path / "state", clock=lambda: 0.0) as journal:
        jobs = {(j.model, j.version): j for j in journal.jobs()}
    assert set(jobs) == {("clock", served), ("clock", 7000), ("linked", 1000), ("leak", 1000)}
    assert jobs[("linked", 1000)].state is JobState.PUBLISHED
    assert jobs[("linked", 1000)].flavour is Flavour.ORIGINAL
    published = serving / "linked" / "1000"
    assert (published / "variables").is_dir() and not (published / "variables").is_symlink()
    feed: dict[str, np.ndarray] = {"x": np.ones((2, 16), np.float32)}
    [expected] = session_outputs(mlp_model, [feed])
    [got] = session_outputs(published, [feed])
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-6)
    # ... and the link out of incoming failed the job with its reason, nothing copied.
    assert jobs[("leak", 1000)].state is JobState.FAILED
    assert "leads outside the incoming base" in (jobs[("leak", 1000)].reason or "")
    assert not (serving / "leak").exists() or publisher.published_versions("leak") == []
    copied = [p for p in serving.rglob("*") if p.is_file() and "must never" in p.read_text(
        errors="ignore")]
    assert copied == []
