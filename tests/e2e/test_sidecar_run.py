"""``tftrt-sidecar run --once`` as a real process over real directories, watched the whole
time by a poller that loads versions the way TF Serving does.

Versions land under incoming numbers and are served as ``served_version(N)`` = N * 1000.
"""

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
from sidecar.tfserving.warmup import predict_request_from_arrays, write_warmup_file
from tests.support.builders import corrupt_copy, land
from tests.support.disks import tree_listing
from tests.support.serving_poller import ServingPoller

pytestmark = pytest.mark.usefixtures("one_build")  # one build per version

REPO_ROOT = Path(__file__).resolve().parents[2]
SIDECAR = Path(sys.executable).with_name("tftrt-sidecar")


def directory_flags(root: Path) -> list[str]:
    return [
        "--incoming", str(root / "incoming"), "--serving", str(root / "serving"),
        "--state", str(root / "state"), "--engine-cache", str(root / "engine-cache"),
        "--model-config-file", str(root / "serving" / "models.config"),
        "--settle-seconds", "0.3", "--rescan-interval-seconds", "0.1",
    ]


def run_sidecar(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [str(SIDECAR), "run", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )


def hidden_entries(serving: Path) -> list[str]:
    return [
        f"{model}/{name}" for model in os.listdir(serving) if (serving / model).is_dir()
        for name in os.listdir(serving / model) if name.startswith(".")
    ]


def test_run_once_handles_several_versions_and_models_at_once(
    tmp_path: Path, mlp_model: Path
) -> None:
    incoming, serving = tmp_path / "incoming", tmp_path / "serving"
    for version in (1, 2):
        land(mlp_model, incoming, "alpha", version)
    land(mlp_model, incoming, "beta", 1)  # its policy asks for TensorRT, which TF 2.21 lacks
    land(corrupt_copy(mlp_model, tmp_path / "corrupt"), incoming, "gamma", 1)
    delta = tmp_path / "delta"
    shutil.copytree(mlp_model, delta)
    write_warmup_file(delta, [predict_request_from_arrays("delta", {"x": np.ones((1, 16),
                                                                                  np.float32)})])
    # Served before the sidecar ran, under the number incoming 1 maps to.
    VersionPublisher(serving).publish_copy("delta", served_version(1), delta)
    land(mlp_model, incoming, "delta", 1)
    config = tmp_path / "sidecar.toml"
    config.write_text('[models.beta]\nbackend = "tensorrt"\n')

    with ServingPoller(serving, poll_seconds=0.1) as poller:
        done = run_sidecar("--once", "--config", str(config), *directory_flags(tmp_path))
        assert poller.wait_for("alpha", 2000) and poller.wait_for("beta", 1000)

    assert done.returncode == 3, done.stderr[-3000:]  # gamma failed; the others went on
    assert poller.violations == []
    assert {("alpha", 1000), ("alpha", 2000), ("beta", 1000), ("delta", 1000)} <= set(
        poller.loaded)
    with JobJournal.open(tmp_path / "state", clock=lambda: 0.0) as journal:
        jobs = {(j.model, j.version): j for j in journal.jobs()}
    assert {key: job.state for key, job in jobs.items()} == {
        ("alpha", 1000): JobState.PUBLISHED, ("alpha", 2000): JobState.PUBLISHED,
        ("beta", 1000): JobState.PUBLISHED, ("gamma", 1000): JobState.FAILED,
        ("delta", 1000): JobState.SKIPPED,
    }
    assert jobs[("alpha", 2000)].flavour is Flavour.CONVERTED
    assert jobs[("beta", 1000)].flavour is Flavour.ORIGINAL
    assert "tensorrt" in (jobs[("beta", 1000)].flavour_reason or "")
    assert "TF1 Session loader" in (jobs[("gamma", 1000)].reason or "")
    assert "already published" in (jobs[("delta", 1000)].reason or "")
    assert "alpha/2000: published converted" in done.stdout
    publisher = VersionPublisher(serving)
    assert publisher.published_versions("alpha") == [1000, 2000]
    assert publisher.published_versions("gamma") == []
    assert hidden_entries(serving) == []
    model_config = (serving / "models.config").read_text()
    assert [f'name: "{m}"' in model_config for m in ("alpha", "beta", "delta", "gamma")] == [
        True, True, True, False]

    before = {m: tree_listing(serving / m) for m in ("alpha", "beta", "delta")}
    again = run_sidecar("--once", "--config", str(config), *directory_flags(tmp_path))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing to do" in again.stdout
    assert {m: tree_listing(serving / m) for m in before} == before  # never republished


def test_run_reports_bad_settings_clearly(tmp_path: Path) -> None:
    done = run_sidecar("--once", *directory_flags(tmp_path), "--settle-seconds", "soon")
    assert done.returncode == 2
    assert "settle_seconds = 'soon'" in done.stderr and "Fix:" in done.stderr
    missing = run_sidecar("--once", *directory_flags(tmp_path))
    assert missing.returncode == 1
    assert "incoming base directory does not exist" in missing.stderr


def test_run_reports_a_corrupt_shape_store_as_a_storage_fault(tmp_path: Path) -> None:
    (tmp_path / "incoming").mkdir()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "shapes.sqlite3").write_bytes(b"not a database" * 100)
    done = run_sidecar("--once", *directory_flags(tmp_path))
    assert done.returncode == 1, done.stderr
    assert "is not a usable shape store" in done.stderr and "move it aside" in done.stderr
    assert "internal error" not in done.stderr  # a SidecarError, said as such
