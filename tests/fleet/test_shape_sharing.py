"""Fleet-wide shapes end to end on real parts: replicas with real shape stores on tmp state
directories contribute through real contributor threads into one real shared-directory
store; each replica's fleet source merges the others' fresh files with its own live counts.
Faults are real too: a read-only remounted tmpfs, a shapes directory that cannot be listed."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from sidecar.fleet.shape_contributor import ShapeContributor
from sidecar.fleet.shape_source import FleetShapeSource
from sidecar.fleet.shapes import merge_contributions
from sidecar.fleet.shared_dir import SharedDirectoryStore
from sidecar.shapes import ShapeObservation, ShapeSet, ShapeStore, ShapeStoreSettings, TensorSpec
from tests.fleet.conftest import open_store
from tests.support.disks import small_tmpfs
from tests.support.waiting import wait_until

SIGNATURE = "serving_default"
SHARE = 30.0
"""Seconds between contributions where a test does not drive them itself."""


def _batch(size: int) -> ShapeSet:
    return ShapeSet.of({"x": TensorSpec("DT_FLOAT", (size, 16))})


@dataclass
class Clock:
    """A wall clock the test moves (starts at the real time)."""

    now: float

    def __call__(self) -> float:
        return self.now


@dataclass
class Replica:
    """One replica's parts: its shape store, its view of the fleet store, its contributor."""

    name: str
    shapes: ShapeStore
    store: SharedDirectoryStore
    contributor: ShapeContributor

    def traffic(self, batches: dict[int, int], *, sampled: bool = False) -> None:
        """Record ``batches`` (batch size -> requests), each request sampled if asked."""
        self.shapes.record([
            ShapeObservation("mlp", SIGNATURE, _batch(size), time.time(),
                             sample=_request(size, self.name) if sampled else None)
            for size, count in batches.items() for _ in range(count)])

    def source(self, *, wall_clock: Callable[[], float] = time.time,
               monotonic: Callable[[], float] = time.monotonic) -> FleetShapeSource:
        """This replica's fleet shape source (reading the store at most every 5 s)."""
        return FleetShapeSource(self.store, self.shapes, SHARE, refresh_seconds=5.0,
                                wall_clock=wall_clock, monotonic=monotonic)

    def written(self) -> dict[ShapeSet, int]:
        """What this replica's file in the store says, as read back by anyone."""
        files = {self.name: self.store.shape_contributions()[self.name]}
        merged = merge_contributions(files, now=time.time(), horizon_seconds=3600)
        return dict(merged.shape_set_counts("mlp", SIGNATURE))


def _counts(source: FleetShapeSource) -> dict[ShapeSet, int]:
    counts = source.shape_set_counts("mlp", SIGNATURE)
    assert len(counts) == len(dict(counts))  # each shape set once
    return dict(counts)


def _request(size: int, replica: str) -> bytes:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mlp"
    request.model_spec.signature_name = replica  # marks whose sample it is
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((size, 16), np.float32)))
    return bytes(request.SerializeToString())


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[dict[str, Replica]]:
    """Three replicas a, b, c on one store directory, contributing every SHARE seconds."""
    replicas = {}
    for name in "abc":
        (tmp_path / name).mkdir()
        shapes = ShapeStore(tmp_path / name, ShapeStoreSettings(), time.time)
        store = open_store(tmp_path / "store", name)
        replicas[name] = Replica(name, shapes, store, ShapeContributor(store, shapes, SHARE))
    yield replicas
    for replica in replicas.values():
        replica.shapes.close()


def test_the_fleet_counts_every_replicas_traffic_and_its_own_once(
    fleet: dict[str, Replica]
) -> None:
    a, b, c = fleet["a"], fleet["b"], fleet["c"]
    a.traffic({1: 3}, sampled=True)
    b.traffic({1: 2, 8: 6}, sampled=True)
    c.traffic({32: 10})
    for replica in (a, b, c):
        replica.contributor.start()  # writes at once
    try:
        source = a.source()
        assert _counts(source) == {_batch(1): 5, _batch(32): 10, _batch(8): 6}
        assert source.top_shape_sets("mlp", SIGNATURE, 2).shape_sets == [_batch(32), _batch(8)]
        assert source.contributors == 3
        assert a.written() == {_batch(1): 3}  # a's own file is there, and not counted again

        # a's newest traffic counts at once, before a writes its file again.
        a.traffic({64: 20})
        assert a.written() == {_batch(1): 3}
        assert source.top_shape_sets("mlp", SIGNATURE, 1).shape_sets == [_batch(64)]
        # Values stay local: a replays its own samples only.
        assert [r.model_spec.signature_name for r in source.predict_requests("mlp")] == ["a"] * 3
        # The others see a's traffic once a wrote it.
        assert _counts(b.source()) == {_batch(1): 5, _batch(32): 10, _batch(8): 6}
        assert a.contributor.contribute()
        assert _counts(b.source()) == {_batch(1): 5, _batch(32): 10, _batch(64): 20, _batch(8): 6}
        a.traffic({128: 1})
    finally:
        for replica in (a, b, c):
            replica.contributor.stop()
    assert a.written() == {_batch(1): 3, _batch(64): 20, _batch(128): 1}  # written at stop


def test_a_replica_that_stopped_writing_ages_out_after_four_intervals(
    fleet: dict[str, Replica]
) -> None:
    a, b, c = fleet["a"], fleet["b"], fleet["c"]
    wall, monotonic = Clock(time.time()), Clock(0.0)
    b.contributor = ShapeContributor(b.store, b.shapes, SHARE, wall_clock=wall)
    c.contributor = ShapeContributor(c.store, c.shapes, SHARE, wall_clock=wall)
    b.traffic({8: 4})
    c.traffic({32: 2})
    assert b.contributor.contribute()
    assert c.contributor.contribute()
    source = a.source(wall_clock=wall, monotonic=monotonic)
    assert source.contributors == 3

    # c goes on writing every interval; b went away after its last file.
    for _ in range(4):
        wall.now += SHARE
        assert c.contributor.contribute()
    assert source.contributors == 3  # read within the last few seconds: the cached merge
    wall.now -= 0.5
    monotonic.now += 5.0
    assert source.contributors == 3  # b's file is not quite four intervals old: still fresh
    wall.now += 1.0
    monotonic.now += 5.0
    assert source.contributors == 2
    assert _counts(source) == {_batch(32): 2}


def test_the_store_is_read_at_most_every_few_seconds(fleet: dict[str, Replica]) -> None:
    a, b = fleet["a"], fleet["b"]
    monotonic = Clock(0.0)
    source = a.source(monotonic=monotonic)
    assert source.contributors == 1 and _counts(source) == {}
    b.traffic({8: 4})
    assert b.contributor.contribute()
    monotonic.now += 4.9
    assert _counts(source) == {}
    monotonic.now += 0.1
    assert _counts(source) == {_batch(8): 4}


def test_the_contributor_writes_at_start_on_its_interval_and_at_stop(
    fleet: dict[str, Replica]
) -> None:
    a = fleet["a"]
    a.traffic({1: 1})
    a.contributor = ShapeContributor(a.store, a.shapes, 0.2)
    a.contributor.start()
    try:
        assert a.written() == {_batch(1): 1}
        first = a.contributor.last_written_at
        assert first is not None
        a.traffic({8: 2})
        wait_until(lambda: a.written() == {_batch(1): 1, _batch(8): 2}, 10,
                   "the next interval's write")
        # The stamp is kept once the store took the file (a moment after it is visible).
        wait_until(lambda: (a.contributor.last_written_at or 0) > first, 10,
                   "the stamp of the interval's write")
    finally:
        a.contributor.stop()
    assert a.contributor.failed_writes == 0


def test_a_read_only_store_fails_contributions_countably_and_they_resume_after(
    tmp_path: Path, fleet: dict[str, Replica], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = fleet["a"], fleet["b"]
    b.traffic({8: 4})
    a.traffic({1: 1})
    with small_tmpfs(tmp_path / "volume", "4m") as volume:
        a.store, b.store = open_store(volume, "a"), open_store(volume, "b")
        assert ShapeContributor(b.store, b.shapes, SHARE).contribute()
        a.contributor = ShapeContributor(a.store, a.shapes, 0.05)
        subprocess.run(["mount", "-o", "remount,ro", str(volume)], check=True)
        with caplog.at_level(logging.INFO, logger="sidecar.fleet"):
            try:
                a.contributor.start()
                assert a.contributor.failed_writes >= 1  # start wrote (and the thread may have)
                wait_until(lambda: a.contributor.failed_writes >= 4, 10, "retries every tick")
                assert a.contributor.last_written_at is None
                assert "a" not in a.store.shape_contributions()
                # Reading still works on a read-only volume: b's counts are merged.
                assert _counts(a.source()) == {_batch(1): 1, _batch(8): 4}
            finally:
                subprocess.run(["mount", "-o", "remount,rw", str(volume)], check=True)
            try:
                wait_until(lambda: a.contributor.last_written_at is not None, 10,
                           "a write once the volume is writable")
            finally:
                a.contributor.stop()
        assert a.written() == {_batch(1): 1}
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "sidecar.fleet"]
    assert len(logged) == 2, logged  # once for the episode, not once per retry
    (warning, failure), (info, recovery) = logged
    assert warning == logging.WARNING and info == logging.INFO
    assert failure.startswith("writing this replica's shape counts into the fleet store failed (")
    assert "Read-only file system" in failure and "retried every 0.05 s" in failure
    assert recovery == "writing this replica's shape counts into the fleet store works again"


def test_a_store_that_cannot_be_read_leaves_the_local_counts(
    tmp_path: Path, fleet: dict[str, Replica], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = fleet["a"], fleet["b"]
    a.traffic({1: 1})
    b.traffic({8: 4})
    assert b.contributor.contribute()
    monotonic = Clock(0.0)
    source = a.source(monotonic=monotonic)
    shapes_dir = tmp_path / "store" / "shapes"
    shapes_dir.rename(tmp_path / "shapes-aside")
    shapes_dir.symlink_to(shapes_dir.name)  # a loop: listing it fails with ELOOP
    with caplog.at_level(logging.WARNING, logger="sidecar.fleet"):
        assert _counts(source) == {_batch(1): 1}
        assert source.contributors == 1
        monotonic.now += 5.0
        assert source.top_shape_sets("mlp", SIGNATURE, 1).shape_sets == [_batch(1)]
    [warning] = [r.getMessage() for r in caplog.records if r.name == "sidecar.fleet"]
    assert "reading the fleet's shape counts failed" in warning
    assert "Too many levels of symbolic links" in warning
    assert "this replica's counts only" in warning

    shapes_dir.unlink()
    (tmp_path / "shapes-aside").rename(shapes_dir)
    monotonic.now += 5.0
    assert _counts(source) == {_batch(1): 1, _batch(8): 4}
    assert source.contributors == 2
