"""The durable shape store, on real sqlite files, with the clock passed in."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tensorflow_serving.apis import classification_pb2, predict_pb2

from sidecar.shapes import (
    ANY_DIMENSION,
    Refusal,
    ShapeLimits,
    ShapeObservation,
    ShapeSet,
    ShapeStore,
    ShapeStoreCorruptError,
    ShapeStoreSettings,
    TensorSpec,
)
from sidecar.shapes.schema import DATABASE_NAME


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def batch(size: int, features: int = 4) -> ShapeSet:
    return ShapeSet.of({"x": TensorSpec("DT_FLOAT", (size, features))})


def seen(
    clock: Clock,
    shape_set: ShapeSet,
    model: str = "m",
    sample: bytes | None = None,
    method: str = "Predict",
    signature: str = "serving_default",
) -> ShapeObservation:
    return ShapeObservation(model, signature, shape_set, clock(), method=method, sample=sample)


SETTINGS = ShapeStoreSettings(window_seconds=600, bucket_seconds=60, coarse_bucket_seconds=300)


def test_top_shape_sets_rank_by_traffic_with_shares(tmp_path: Path) -> None:
    clock = Clock()
    with ShapeStore(tmp_path, SETTINGS, clock) as store:
        store.record([seen(clock, batch(8))] * 6 + [seen(clock, batch(1))] * 3)
        store.record([seen(clock, batch(32))])
        top = store.top_shape_sets("m", "serving_default", 2)
    assert top.shape_sets == [batch(8), batch(1)]
    assert top.total_requests == 10
    assert [entry.count for entry in top.entries] == [6, 3]
    assert top.covered_share == pytest.approx(0.9)
    assert dict(top.entries[0].shape_set) == {"x": TensorSpec("DT_FLOAT", (8, 4))}


def test_old_traffic_slides_out_of_the_window(tmp_path: Path) -> None:
    clock = Clock()
    with ShapeStore(tmp_path, SETTINGS, clock) as store:
        store.record([seen(clock, batch(1))] * 5)
        clock.now += 300
        store.record([seen(clock, batch(2))] * 2)
        assert store.top_shape_sets("m", "serving_default", 5).total_requests == 7
        clock.now += 400  # the first batch is now 700 s old
        top = store.top_shape_sets("m", "serving_default", 5)
        assert top.shape_sets == [batch(2)]
        assert top.covered_share == 1.0
        clock.now += 700
        assert store.top_shape_sets("m", "serving_default", 5).total_requests == 0
        assert store.signatures() == []


def test_coverage_of_prebuilt_shape_sets(tmp_path: Path) -> None:
    clock = Clock()
    with ShapeStore(tmp_path, SETTINGS, clock) as store:
        assert store.coverage("m", "serving_default", []).share == 1.0
        store.record(
            [seen(clock, batch(1))] * 3 + [seen(clock, batch(4))] + [seen(clock, batch(9))]
        )
        exact = store.coverage("m", "serving_default", [batch(1), batch(4)])
        dynamic = store.coverage(
            "m", "serving_default", [ShapeSet.of({"x": TensorSpec("DT_FLOAT", (ANY_DIMENSION, 4))})]
        )
        wrong_dtype = store.coverage(
            "m", "serving_default", [ShapeSet.of({"x": TensorSpec("DT_HALF", (1, 4))})]
        )
    assert (exact.covered_requests, exact.total_requests) == (4, 5)
    assert exact.share == pytest.approx(0.8)
    assert dynamic.share == 1.0
    assert wrong_dtype.share == 0.0


def test_hostile_shapes_are_refused_and_counted(tmp_path: Path) -> None:
    clock = Clock()
    limits = ShapeLimits(max_elements=1000, max_dimension=100, max_rank=3, max_inputs=2)
    settings = ShapeStoreSettings(
        window_seconds=600, bucket_seconds=60, coarse_bucket_seconds=300, limits=limits,
        max_shape_sets_per_signature=3,
    )
    hostile = [
        ShapeSet.of({"x": TensorSpec("DT_FLOAT", (1, 1, 1, 1))}),
        ShapeSet.of({"x": TensorSpec("DT_FLOAT", (101,))}),
        ShapeSet.of({"x": TensorSpec("DT_FLOAT", (50, 50))}),
        ShapeSet.of({name: TensorSpec("DT_FLOAT", (1,)) for name in "abc"}),
        ShapeSet.of({"x": TensorSpec("DT_FLOAT", (-1,))}),
    ]
    with ShapeStore(tmp_path, settings, clock) as store:
        outcomes = store.record([seen(clock, shape_set, sample=b"s") for shape_set in hostile])
        assert outcomes == [
            Refusal.RANK,
            Refusal.DIMENSION,
            Refusal.ELEMENTS,
            Refusal.INPUTS,
            Refusal.NEGATIVE,
        ]
        # A client cycling through sizes: only the first three distinct sets are kept.
        cycling = store.record([seen(clock, batch(size)) for size in (1, 2, 3, 4, 1)])
        assert cycling == [None, None, None, Refusal.TOO_MANY_SHAPE_SETS, None]
        assert store.top_shape_sets("m", "serving_default", 10).total_requests == 4
        assert store.samples("m") == []
        assert store.refused_counts("m")[Refusal.TOO_MANY_SHAPE_SETS] == 1
        assert sum(store.refused_counts().values()) == 6


def test_counts_and_samples_survive_reopening(tmp_path: Path) -> None:
    clock = Clock()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.inputs["x"].dtype = 1
    with ShapeStore(tmp_path, SETTINGS, clock) as store:
        store.record(
            [seen(clock, batch(8), sample=request.SerializeToString())]
            + [seen(clock, batch(8))] * 2
        )
    assert sqlite3.connect(tmp_path / DATABASE_NAME).execute("PRAGMA journal_mode").fetchone() == (
        "wal",
    )
    with ShapeStore(tmp_path, SETTINGS, clock) as reopened:
        top = reopened.top_shape_sets("m", "serving_default", 1)
        assert (top.shape_sets, top.total_requests) == ([batch(8)], 3)
        assert reopened.predict_requests("m") == [request]
        (log,) = reopened.warmup_logs("m")
    assert log.predict_log.request == request


def test_samples_are_bounded_per_model_oldest_evicted(tmp_path: Path) -> None:
    clock = Clock()
    settings = ShapeStoreSettings(
        window_seconds=600,
        bucket_seconds=60,
        coarse_bucket_seconds=300,
        max_samples_per_model=3,
        max_sample_bytes_per_model=250,
    )
    with ShapeStore(tmp_path, settings, clock) as store:
        for index in range(5):
            clock.now += 1
            store.record([seen(clock, batch(1), sample=bytes([index]) * 10)])
        store.record([seen(clock, batch(1), model="other", sample=b"o" * 10)])
        assert [s.request_bytes[0] for s in store.samples("m")] == [2, 3, 4]
        for index in range(5, 8):
            store.record([seen(clock, batch(1), sample=bytes([index]) * 100)])
        # 3 x 100 bytes exceed 250: only the two newest stay.
        assert [s.request_bytes[0] for s in store.samples("m")] == [6, 7]
        assert len(store.samples("other")) == 1


def test_classify_samples_become_classify_warmup_logs(tmp_path: Path) -> None:
    clock = Clock()
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "m"
    request.model_spec.signature_name = "classify"
    request.input.example_list.examples.add()
    strings = ShapeSet.of({"inputs": TensorSpec("DT_STRING", (1,))})
    with ShapeStore(tmp_path, SETTINGS, clock) as store:
        store.record(
            [
                seen(
                    clock,
                    strings,
                    sample=request.SerializeToString(),
                    method="Classify",
                    signature="classify",
                )
            ]
        )
        (sample,) = store.samples("m", "classify")
        assert store.predict_requests("m") == []
        (log,) = store.warmup_logs("m")
    assert sample.request() == request
    assert log.classify_log.request == request


def test_bad_files_and_limits_are_reported(tmp_path: Path) -> None:
    # Bad shape-store settings are refused by load_settings (tests/config).
    (tmp_path / DATABASE_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ShapeStoreCorruptError, match="move it aside"):
        ShapeStore(tmp_path, SETTINGS, Clock())
    with pytest.raises(ValueError, match="max_rank"):
        ShapeLimits(max_rank=0)


def test_shape_set_key_round_trips() -> None:
    shape_set = ShapeSet.of({"b": TensorSpec("DT_INT32", ()), "a": TensorSpec("DT_FLOAT", (2, 3))})
    assert list(shape_set) == ["a", "b"]
    assert ShapeSet.from_key(shape_set.key()) == shape_set
    assert shape_set["b"].elements == 1


def _count_rows(store_dir: Path) -> int:
    with sqlite3.connect(store_dir / DATABASE_NAME) as db:
        return int(db.execute("SELECT COUNT(*) FROM shape_counts").fetchone()[0])


def test_rows_stay_within_the_designed_bound_over_days_of_traffic(tmp_path: Path) -> None:
    # The default buckets, with a smaller shape cap so a day and a half of minutes runs
    # quickly: every shape set is requested every minute, the worst case for row count.
    settings = ShapeStoreSettings(max_shape_sets_per_signature=40)
    shapes = [batch(size) for size in range(1, 41)]
    clock = Clock(now=1_800_000_000.0)
    minutes = 36 * 60
    bound = settings.max_rows_per_signature
    assert settings.max_rows_per_shape_set == 36  # 10 fine minutes + 1, 24 hours + 1
    with ShapeStore(tmp_path, settings, clock) as store:
        for minute in range(minutes):
            clock.now += 60
            assert store.record([seen(clock, shape) for shape in shapes]) == [None] * 40
            if minute % 60 == 0:
                assert _count_rows(tmp_path) <= bound
        counts = dict(store.shape_set_counts("m", "serving_default"))
    rows = _count_rows(tmp_path)
    assert rows <= bound < 40 * 24 * 60 / 30, f"{rows} rows for 40 shape sets"
    # Folding keeps every count: each shape set has one request per minute of the window,
    # less at most the coarse bucket the window's far edge is in.
    assert set(counts) == set(shapes)
    assert all(23 * 60 <= count <= 24 * 60 + 1 for count in counts.values()), counts


def test_folding_keeps_counts_across_a_restart(tmp_path: Path) -> None:
    settings = ShapeStoreSettings()
    clock = Clock(now=1_800_000_000.0)
    with ShapeStore(tmp_path, settings, clock) as store:
        for _ in range(90):
            clock.now += 60
            store.record([seen(clock, batch(1)), seen(clock, batch(2))])
    clock.now += 3 * 3600  # the sidecar was down for three hours
    with ShapeStore(tmp_path, settings, clock) as reopened:
        reopened.record([seen(clock, batch(1))])
        counts = dict(reopened.shape_set_counts("m", "serving_default"))
    assert counts == {batch(1): 91, batch(2): 90}
    assert _count_rows(tmp_path) <= 2 * 3  # two hours of each, and the current minute
