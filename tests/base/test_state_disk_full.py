"""A full state disk (a real tmpfs filled to the last byte) under the journal and the shape
store: the write fails with sqlite's own reason and a fix, nothing half-written stays, and
writes succeed again once space is freed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sidecar.base.errors import StorageError
from sidecar.shapes import (
    ShapeObservation,
    ShapeSet,
    ShapeStore,
    ShapeStoreSettings,
    ShapeStoreWriteError,
    TensorSpec,
)
from sidecar.state import JobJournal, JobState
from tests.support.clock import ManualClock
from tests.support.disks import fill_disk, small_tmpfs

BIG = "x" * 300_000  # larger than any free space left on the filled disk


def test_journal_on_a_full_disk_reports_the_real_error_and_recovers(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with small_tmpfs(state, "2m"), JobJournal.open(state, clock=ManualClock()) as journal:
        check_journal_on_full_disk(state, journal)


def check_journal_on_full_disk(state: Path, journal: JobJournal) -> None:
    journal.discover("alpha", 1000)
    filler = fill_disk(state)
    with pytest.raises(StorageError) as raised:
        journal.discover("alpha", 2000, reason=BIG)
    message = str(raised.value)
    assert "database or disk is full" in message and "free space" in message
    assert "cannot rollback" not in message
    assert raised.value.retryable
    with pytest.raises(StorageError):  # and again: the connection is still usable
        journal.advance("alpha", 1000, JobState.FAILED, reason=BIG)
    os.unlink(filler)
    job, new = journal.discover("alpha", 2000, reason=BIG)
    assert new and job.reason == BIG
    assert journal.advance("alpha", 1000, JobState.CONVERTING).state is JobState.CONVERTING
    assert {j.version for j in journal.jobs()} == {1000, 2000}


def observation(sample: bytes) -> ShapeObservation:
    shapes = ShapeSet.of({"x": TensorSpec("DT_FLOAT", (1, 16))})
    return ShapeObservation("alpha", "serving_default", shapes, 2000.0, "Predict", sample=sample)


def test_shape_store_on_a_full_disk_refuses_the_batch_clearly_and_recovers(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    with small_tmpfs(state, "2m"), ShapeStore(state, ShapeStoreSettings(), lambda: 2000.0) as store:
        check_store_on_full_disk(state, store)


def check_store_on_full_disk(state: Path, store: ShapeStore) -> None:
    store.record([observation(b"small")])
    filler = fill_disk(state)
    with pytest.raises(ShapeStoreWriteError) as raised:
        store.record([observation(BIG.encode())])
    message = str(raised.value)
    assert "database or disk is full" in message and "free space" in message
    assert "cannot rollback" not in message
    assert isinstance(raised.value, StorageError) and raised.value.retryable
    assert [count for _, count in store.shape_set_counts("alpha", "serving_default")] == [1]
    os.unlink(filler)
    store.record([observation(BIG.encode())])
    assert [count for _, count in store.shape_set_counts("alpha", "serving_default")] == [2]
