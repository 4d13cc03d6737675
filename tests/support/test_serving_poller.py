"""The test-only serving poller catches what TF Serving would trip on, so its silence counts."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tests.support.serving_poller import ServingPoller


def slow_copy(source: str, target: str) -> object:
    shutil.copy2(source, target)
    time.sleep(0.15)  # on purpose: a slow writer, so the poller sees the version half-written
    return target


def test_a_good_version_loads_and_warms_up(tmp_path: Path, tiny_model: Path) -> None:
    with ServingPoller(tmp_path, poll_seconds=0.05) as poller:
        shutil.copytree(tiny_model, tmp_path / ".hidden-copy")
        (tmp_path / "tiny").mkdir()
        (tmp_path / ".hidden-copy").rename(tmp_path / "tiny" / "1")
        assert poller.wait_for("tiny", 1)
    assert poller.violations == []
    assert poller.loaded == [("tiny", 1)]


def test_writing_in_place_is_caught(tmp_path: Path, tiny_model: Path) -> None:
    with ServingPoller(tmp_path, poll_seconds=0.02, require_warmup=False) as poller:
        shutil.copytree(tiny_model, tmp_path / "tiny" / "1", copy_function=slow_copy)
    kinds = {violation.kind for violation in poller.violations}
    assert kinds & {"partial", "unloadable"}, poller.violations


def test_missing_warmup_and_unloadable_models_are_caught(
    tmp_path: Path, tiny_model: Path, broken_model: Path
) -> None:
    staging = tmp_path / "staging"
    shutil.copytree(tiny_model, staging / "no-warmup")
    shutil.rmtree(staging / "no-warmup" / "assets.extra")
    shutil.copytree(broken_model, staging / "broken")
    (tmp_path / "m").mkdir()
    with ServingPoller(tmp_path, poll_seconds=0.05) as poller:
        (staging / "no-warmup").rename(tmp_path / "m" / "1")
        (staging / "broken").rename(tmp_path / "m" / "2")
        poller.wait_for("m", 2)
    assert sorted((v.version, v.kind) for v in poller.violations) == [
        (1, "no-warmup"), (2, "unloadable"),
    ]
