"""The watcher when incoming itself fails, on real directories and mounts: a renamed-away
base, a lazily detached bind mount (the empty mount point stays), a served model's
emptied directory. None of them is a vanishing; each is a fault until it passes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sidecar.watch import IncomingWatcher, WatchEvent, WatchEventKind
from tests.support.clock import ManualClock

VANISHED = WatchEventKind.VANISHED


def land(base: Path, model: str, version: int) -> None:
    directory = base / model / str(version)
    directory.mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(b"model")


def watcher(base: Path, clock: ManualClock, served: set[str]) -> IncomingWatcher:
    return IncomingWatcher(base, settle_seconds=0.0, marker_file=None, clock=clock,
                           is_served=served.__contains__)


def kinds(events: list[WatchEvent]) -> list[tuple[WatchEventKind, str, int]]:
    return [(event.kind, event.model, event.version) for event in events]


def test_base_renamed_away_and_back_is_a_fault_that_passes(
    tmp_path: Path, clock: ManualClock
) -> None:
    base = tmp_path / "incoming"
    land(base, "a", 1)
    land(base, "a", 2)
    watch = watcher(base, clock, {"a"})
    assert len(watch.scan()) == 4 and not watch.faults
    os.rename(base, tmp_path / "away")
    assert watch.scan() == []
    [fault] = list(watch.faults)
    assert fault.model is None and "is missing" in fault.problem
    os.rename(tmp_path / "away", base)
    assert watch.scan() == []  # nothing appeared, nothing vanished: it was a fault
    assert watch.faults == ()
    shutil.rmtree(base / "a" / "1")  # healthy again: a real removal is one
    assert kinds(watch.scan()) == [(VANISHED, "a", 1)]


def test_lazily_detached_mount_leaves_an_empty_mount_point_that_is_a_fault(
    tmp_path: Path, clock: ManualClock
) -> None:
    volume, base = tmp_path / "volume", tmp_path / "incoming"
    land(volume, "a", 1)
    land(volume, "b", 7)
    base.mkdir()
    subprocess.run(["mount", "--bind", str(volume), str(base)], check=True)
    try:
        watch = watcher(base, clock, {"a", "b"})
        assert len(watch.scan()) == 4
        subprocess.run(["umount", "-l", str(base)], check=True)
        assert list(base.iterdir()) == []
        assert watch.scan() == []
        [fault] = list(watch.faults)
        assert fault.model is None and "holds no model version" in fault.problem
        subprocess.run(["mount", "--bind", str(volume), str(base)], check=True)
        assert watch.scan() == [] and watch.faults == ()
    finally:
        subprocess.run(["umount", "-l", str(base)], check=False)


def test_a_served_models_emptied_directory_is_a_fault_other_removals_are_not(
    tmp_path: Path, clock: ManualClock
) -> None:
    base = tmp_path / "incoming"
    for model, version in (("a", 1), ("b", 1), ("b", 2), ("c", 1)):
        land(base, model, version)
    watch = watcher(base, clock, {"a", "b"})
    assert len(watch.scan()) == 8
    shutil.rmtree(base / "a" / "1")  # a's only version: its directory is now empty
    shutil.rmtree(base / "b" / "2")  # b still has version 1: a removal
    shutil.rmtree(base / "c")  # c is not served: a removal
    assert kinds(watch.scan()) == [(VANISHED, "b", 2), (VANISHED, "c", 1)]
    [fault] = list(watch.faults)
    assert fault.model == "a" and fault.path == base / "a"
    land(base, "a", 1)
    assert watch.scan() == [] and watch.faults == ()
