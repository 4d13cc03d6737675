"""A job's view of its incoming version on real directories: removed, under an incoming
fault, rewritten, or replaced by an identical copy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sidecar.base.errors import StorageError
from sidecar.jobs import VersionVanishedError
from sidecar.jobs.errors import SourceChangedError
from sidecar.jobs.source import JobSource


def source_of(base: Path, served: set[str]) -> JobSource:
    for version in (1, 2):
        directory = base / "m" / str(version) / "variables"
        directory.mkdir(parents=True)
        (directory.parent / "saved_model.pb").write_bytes(b"graph")
        (directory / "variables.data-00000-of-00001").write_bytes(b"weights")
    return JobSource(base, "m", 2, named="model 'm' version 2000", is_served=served.__contains__)


def test_an_identical_copy_is_the_same_source_a_rewrite_is_not(tmp_path: Path) -> None:
    source = source_of(tmp_path / "incoming", set())
    source.start()
    shutil.copytree(source.path, tmp_path / "copy")  # new inodes and times, same bytes
    os.rename(source.path, tmp_path / "old")
    os.rename(tmp_path / "copy", source.path)
    source.check()
    (source.path / "variables" / "variables.data-00000-of-00001").write_bytes(b"other")
    with pytest.raises(SourceChangedError, match="changed in incoming while its job ran"):
        source.check()


def test_a_removed_version_has_vanished_unless_incoming_is_at_fault(tmp_path: Path) -> None:
    base = tmp_path / "incoming"
    source = source_of(base, {"m"})
    source.start()
    shutil.rmtree(source.path)  # version 1 is still there: a removal
    with pytest.raises(VersionVanishedError, match="removed from incoming while its job ran"):
        source.check()
    os.rename(base, tmp_path / "away")  # the whole base gone: a fault, retried
    with pytest.raises(StorageError, match="is missing") as raised:
        source.check()
    assert raised.value.retryable


def _padded(base: Path) -> JobSource:
    directory = base / "m" / "0007"
    directory.mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(b"graph")
    return JobSource(base, "m", 7, named="model 'm' version 7000", is_served=bool)


def test_a_padded_version_is_read_under_the_name_found_on_disk(tmp_path: Path) -> None:
    source = _padded(tmp_path)
    assert source.path == tmp_path / "m" / "0007"
    source.start()
    source.check()


def test_a_version_renamed_to_another_spelling_under_its_job_is_a_changed_source(
    tmp_path: Path
) -> None:
    source = _padded(tmp_path)
    source.start()
    os.rename(tmp_path / "m" / "0007", tmp_path / "m" / "7")  # the paths the job used are gone
    with pytest.raises(SourceChangedError, match="renamed to '7'"):
        source.check()


def test_a_second_name_for_the_version_under_its_job_makes_it_wait_for_one(
    tmp_path: Path
) -> None:
    source = _padded(tmp_path)
    source.start()
    (tmp_path / "m" / "007").mkdir()
    with pytest.raises(SourceChangedError) as raised:
        source.check()
    message = str(raised.value)
    assert "'0007' and '007' both stand for version 7" in message
    assert "TF Serving itself would serve '007'" in message and "Fix: remove" in message
