"""The incoming watcher on real directories: settling, marker files, vanishing, odd names."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from sidecar.watch import (
    IncomingWatcher,
    InotifyWakeup,
    WatchEvent,
    WatchEventKind,
)
from tests.support.clock import ManualClock

APPEARED, READY, VANISHED = WatchEventKind.APPEARED, WatchEventKind.READY, WatchEventKind.VANISHED


def kinds(events: list[WatchEvent]) -> list[tuple[WatchEventKind, str, int]]:
    return [(event.kind, event.model, event.version) for event in events]


def land(base: Path, model: str, version: str, files: dict[str, bytes]) -> Path:
    directory = base / model / version
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return directory


def watcher_for(base: Path, clock: ManualClock, **kwargs: object) -> IncomingWatcher:
    options: dict[str, object] = {"settle_seconds": 10.0, "marker_file": None, **kwargs}
    return IncomingWatcher(base, clock=clock, **options)  # type: ignore[arg-type]


def test_version_is_ready_only_after_files_settle(tmp_path: Path, clock: ManualClock) -> None:
    version = land(tmp_path, "resnet", "3", {"saved_model.pb": b"a"})
    watcher = watcher_for(tmp_path, clock)
    assert kinds(watcher.scan()) == [(APPEARED, "resnet", 3)]
    clock.advance(6)
    assert watcher.scan() == []
    (version / "variables").mkdir()
    (version / "variables" / "variables.data").write_bytes(b"still writing")
    assert watcher.scan() == []  # changed at t+6: the settle period starts again
    clock.advance(9)
    assert watcher.scan() == []
    assert watcher.waiting() == [("resnet", 3)]
    clock.advance(1)
    events = watcher.scan()
    assert kinds(events) == [(READY, "resnet", 3)]
    assert events[0].path == version
    clock.advance(100)
    assert watcher.scan() == []  # READY is reported once
    assert watcher.waiting() == []


def test_growing_file_keeps_version_unready(tmp_path: Path, clock: ManualClock) -> None:
    version = land(tmp_path, "m", "1", {"saved_model.pb": b"x"})
    watcher = watcher_for(tmp_path, clock, settle_seconds=2.0)
    watcher.scan()
    for _ in range(5):
        clock.advance(1.5)
        with open(version / "saved_model.pb", "ab") as stream:
            stream.write(b"more")
        assert watcher.scan() == []
    clock.advance(2)
    assert kinds(watcher.scan()) == [(READY, "m", 1)]


def test_empty_version_is_never_ready(tmp_path: Path, clock: ManualClock) -> None:
    (tmp_path / "m" / "1" / "variables").mkdir(parents=True)
    watcher = watcher_for(tmp_path, clock, settle_seconds=0.0)
    assert kinds(watcher.scan()) == [(APPEARED, "m", 1)]
    clock.advance(60)
    assert watcher.scan() == []


def test_marker_file_replaces_settling(tmp_path: Path, clock: ManualClock) -> None:
    version = land(tmp_path, "m", "7", {"saved_model.pb": b"x"})
    watcher = watcher_for(tmp_path, clock, settle_seconds=0.0, marker_file="DONE")
    assert kinds(watcher.scan()) == [(APPEARED, "m", 7)]
    clock.advance(3600)
    assert watcher.scan() == []  # settled long ago, but no marker
    (version / "DONE").write_bytes(b"")
    assert kinds(watcher.scan()) == [(READY, "m", 7)]


def test_marker_present_at_first_sight_is_ready_at_once(tmp_path: Path, clock: ManualClock) -> None:
    land(tmp_path, "m", "2", {"saved_model.pb": b"x", "READY": b""})
    watcher = watcher_for(tmp_path, clock, marker_file="READY")
    assert kinds(watcher.scan()) == [(APPEARED, "m", 2), (READY, "m", 2)]


def test_vanished_versions_and_models_are_reported(tmp_path: Path, clock: ManualClock) -> None:
    land(tmp_path, "a", "1", {"f": b"1"})
    land(tmp_path, "a", "2", {"f": b"2"})
    land(tmp_path, "b", "5", {"f": b"5"})
    watcher = watcher_for(tmp_path, clock, settle_seconds=0.0)
    assert len(watcher.scan()) == 6
    shutil.rmtree(tmp_path / "a" / "1")
    shutil.rmtree(tmp_path / "b")
    assert kinds(watcher.scan()) == [(VANISHED, "a", 1), (VANISHED, "b", 5)]
    land(tmp_path, "a", "1", {"f": b"back"})
    assert kinds(watcher.scan()) == [(APPEARED, "a", 1), (READY, "a", 1)]


def test_version_that_vanishes_before_it_settles(tmp_path: Path, clock: ManualClock) -> None:
    land(tmp_path, "m", "4", {"f": b"partial"})
    watcher = watcher_for(tmp_path, clock)
    assert kinds(watcher.scan()) == [(APPEARED, "m", 4)]
    shutil.rmtree(tmp_path / "m" / "4")
    clock.advance(20)
    assert watcher.scan() == []  # first seen gone now: it must stay gone the settle time
    clock.advance(10)
    assert kinds(watcher.scan()) == [(VANISHED, "m", 4)]
    assert watcher.waiting() == []


def test_non_numeric_hidden_and_temporary_names_are_ignored(
    tmp_path: Path, clock: ManualClock
) -> None:
    land(tmp_path, "m", "abc", {"f": b"x"})
    land(tmp_path, "m", ".12", {"f": b"x"})
    land(tmp_path, "m", "12.tmp", {"f": b"x"})
    land(tmp_path, "m", "١٢", {"f": b"x"})  # Arabic-Indic digits are not a TF Serving version
    land(tmp_path, ".hidden", "1", {"f": b"x"})
    land(tmp_path, "_tmp", "1", {"f": b"x"})
    land(tmp_path, "copy.tmp", "1", {"f": b"x"})
    (tmp_path / "m" / "9").write_bytes(b"a file, not a directory")
    (tmp_path / "notes.txt").write_text("a file in the base")
    land(tmp_path, "m", "12", {"f": b"x"})
    watcher = watcher_for(tmp_path, clock, settle_seconds=0.0)
    assert kinds(watcher.scan()) == [(APPEARED, "m", 12), (READY, "m", 12)]
    assert watcher.refused() == []


def test_a_negative_version_name_tf_serving_would_read_is_refused_with_the_range(
    tmp_path: Path, clock: ManualClock
) -> None:
    land(tmp_path, "m", "-3", {"f": b"x"})  # absl::SimpleAtoi reads -3: not one we serve
    watcher = watcher_for(tmp_path, clock, settle_seconds=0.0)
    assert watcher.scan() == []
    [refusal] = watcher.refused()
    assert refusal.path.name == "-3" and "outside 0 to" in refusal.reason


def test_missing_incoming_base_is_a_fault_not_an_error(tmp_path: Path, clock: ManualClock) -> None:
    watcher = watcher_for(tmp_path / "absent", clock)
    assert watcher.scan() == []
    [fault] = list(watcher.faults)
    assert fault.model is None and "is missing" in fault.describe()
    assert "Fix: remount or restore it" in fault.describe()


def test_inotify_wakes_the_loop_early_on_a_change(tmp_path: Path) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    wakeup = InotifyWakeup.open(tmp_path)
    assert wakeup is not None, "Linux inotify should be available through ctypes"
    try:
        assert wakeup.sleep(0.05) is False
        writer = threading.Timer(0.2, (tmp_path / "m" / "1" / "f").write_bytes, [b"x"])
        writer.start()
        started = time.monotonic()
        assert wakeup.sleep(10.0) is True
        assert time.monotonic() - started < 5.0
        writer.join()
    finally:
        wakeup.close()
