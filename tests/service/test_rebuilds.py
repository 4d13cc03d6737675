"""When a coverage-triggered rebuild is due, and when it is not (sidecar/service/rebuilds.py),
on a real journal, shape store and serving base whose versions carry real warmup files; in a
fleet, on the counts of another replica's real shape store in a real shared store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from converter import ConversionReport
from converter.report import REPORT_FILE
from sidecar.config import ModelPolicy
from sidecar.fleet import LeaseBook, SharedDirectoryStore
from sidecar.fleet.shape_contributor import ShapeContributor
from sidecar.fleet.shape_source import FleetShapeSource
from sidecar.publish.published import PublishedModels
from sidecar.service.rebuilds import CoverageRebuilds, PlannedRebuild
from sidecar.shapes import ShapeObservation, ShapeSet, ShapeStore, ShapeStoreSettings, TensorSpec
from sidecar.state import Flavour, JobJournal, JobState
from sidecar.tfserving import numbering
from sidecar.tfserving.warmup import write_warmup_file

POLICY = ModelPolicy(max_engines=2, rebuild_below_coverage=0.8, rebuild_after_seconds=60.0,
                     rebuild_min_requests=10)


def batch(size: int) -> ShapeSet:
    return ShapeSet.of({"x": TensorSpec("DT_FLOAT", (size, 16))})


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Stand:
    root: Path
    journal: JobJournal
    store: ShapeStore
    clock: Clock
    rebuilds: CoverageRebuilds
    paused: set[str]

    def publish(self, model: str, served: int, batches: list[int], *, built: bool = True,
                journal: bool = True) -> None:
        """A version in the serving base, warmed up for `batches` (and its journal job)."""
        (self.root / "incoming" / model / str(numbering.incoming_version(served))).mkdir(
            parents=True, exist_ok=True)
        path = self.root / "serving" / model / str(served)
        path.mkdir(parents=True)
        requests = []
        for size in batches:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model
            request.model_spec.signature_name = "serving_default"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((size, 16), np.float32)))
            requests.append(request)
        write_warmup_file(path, requests)
        if built:
            report = ConversionReport(
                model=str(path), signature="serving_default", backend="xla",
                backend_reason="test", device="cpu", engine_namespace="test", params={},
                total_ops=0, ops_in_segments=0, segments=[], native={}, built=True)
            (path / REPORT_FILE).parent.mkdir(parents=True)
            (path / REPORT_FILE).write_text(report.to_json())
        if journal:
            self.finish(model, served, JobState.PUBLISHED)

    def finish(self, model: str, served: int, state: JobState) -> None:
        self.journal.discover(model, served)
        if state is JobState.PUBLISHED:
            self.journal.advance(model, served, JobState.VERIFYING)
            self.journal.choose_flavour(model, served, Flavour.CONVERTED)
            self.journal.advance(model, served, JobState.PUBLISHED)
        elif state is not JobState.DISCOVERED:
            self.journal.advance(model, served, state, reason="test")

    def traffic(self, model: str, shapes: dict[int, int]) -> None:
        self.store.record([ShapeObservation(model, "serving_default", batch(size), time.time())
                           for size, count in shapes.items() for _ in range(count)])

    def due(self, policy: ModelPolicy = POLICY) -> list[PlannedRebuild]:
        return self.rebuilds.due(self.journal, lambda model: policy, self.paused.__contains__)


@pytest.fixture
def stand(tmp_path: Path) -> Iterator[Stand]:
    journal = JobJournal.open(tmp_path / "state", clock=time.time)
    store = ShapeStore(tmp_path / "state", ShapeStoreSettings(), time.time)
    clock = Clock()
    rebuilds = CoverageRebuilds(store, PublishedModels(tmp_path / "serving", refresh_seconds=0),
                                tmp_path / "incoming", "serving_default", clock)
    yield Stand(tmp_path, journal, store, clock, rebuilds, set())
    store.close()
    journal.close()


def test_a_rebuild_is_due_once_coverage_stays_low_for_the_configured_time(stand: Stand) -> None:
    stand.publish("m", 3000, [1])
    (stand.root / "serving" / "models.config").write_text("")  # TF Serving's config lives here
    stand.traffic("m", {1: 2, 5: 10})
    assert stand.due() == []  # low since now; not for 60 s yet
    stand.clock.now += 59
    assert stand.due() == []
    stand.clock.now += 2
    (planned,) = stand.due()
    assert (planned.model, planned.version) == ("m", 3001)
    assert planned.reason == ("coverage 0.17 below 0.8 for 61 s (2 of 12 recent requests); "
                              "not built for x:DT_FLOAT[5x16]")
    assert stand.due() == []  # reported once; its job is the journal's now
    stand.journal.discover(planned.model, planned.version, reason=planned.reason)
    stand.clock.now += 120
    assert stand.due() == []  # a waiting job makes the model busy


def test_coverage_recovering_restarts_the_clock(stand: Stand) -> None:
    stand.publish("m", 3000, [1])
    stand.traffic("m", {5: 10})
    assert stand.due() == []
    stand.clock.now += 30
    stand.traffic("m", {1: 100})  # coverage 100/110: above the threshold
    assert stand.due() == []
    stand.traffic("m", {5: 100})  # low again: the clock starts over
    assert stand.due() == []
    stand.clock.now += 59
    assert stand.due() == []
    stand.clock.now += 2
    assert [p.version for p in stand.due()] == [3001]


def test_the_next_rebuild_takes_the_next_generation_of_the_served_incoming_version(
    stand: Stand,
) -> None:
    stand.publish("m", 3000, [1])
    stand.publish("m", 3001, [5])
    stand.traffic("m", {7: 20})
    policy = replace(POLICY, rebuild_after_seconds=0)
    assert [p.version for p in stand.due(policy)] == [3002]


def test_no_rebuild_when_the_top_shapes_are_already_warmed_up(stand: Stand) -> None:
    # max_engines = 2: a long tail of 20 shapes cannot be covered; the top two are built.
    stand.publish("m", 3000, [1, 2])
    stand.traffic("m", {1: 30, 2: 20} | {size: 3 for size in range(10, 30)})
    policy = replace(POLICY, rebuild_after_seconds=0)
    assert stand.due(policy) == []


@pytest.mark.parametrize("why", ["too little traffic", "rebuilds off", "paused", "rolled back",
                                 "incoming gone", "not ours", "last rebuild failed",
                                 "original"])
def test_no_rebuild_when(stand: Stand, why: str) -> None:
    policy = replace(POLICY, rebuild_after_seconds=0)
    stand.publish("m", 3000, [1], built=why != "original")
    # An original (conversion failed) is built for nothing, but warmed up for batch 1.
    stand.traffic("m", {1 if why == "original" else 5: 5 if why == "too little traffic" else 50})
    if why == "rebuilds off":
        policy = replace(policy, rebuild_below_coverage=0.0)
    elif why == "paused":
        stand.paused.add("m")
    elif why == "rolled back":  # the operator moved 4000 out of view; 3000 serves
        stand.finish("m", 4000, JobState.PUBLISHED)
    elif why == "incoming gone":
        (stand.root / "incoming" / "m" / "3").rmdir()
    elif why == "not ours":  # placed by hand, newer than the sidecar's
        stand.publish("m", 5000, [1], journal=False)
    elif why == "last rebuild failed":
        stand.finish("m", 3001, JobState.FAILED)
    assert stand.due(policy) == []


def test_a_version_published_as_the_original_is_rebuilt_for_new_shapes(stand: Stand) -> None:
    stand.publish("m", 3000, [1], built=False)
    stand.traffic("m", {5: 50})
    assert [p.version for p in stand.due(replace(POLICY, rebuild_after_seconds=0))] == [3001]


def test_no_served_number_left_means_no_rebuild(stand: Stand) -> None:
    last = numbering.served_version(3, numbering.GENERATIONS - 1)
    stand.publish("m", last, [1])
    stand.traffic("m", {5: 50})
    assert stand.due(replace(POLICY, rebuild_after_seconds=0)) == []


def test_with_the_fleet_source_traffic_another_replica_recorded_makes_a_rebuild_due(
    stand: Stand, tmp_path: Path
) -> None:
    """This replica saw only traffic its served version covers; another replica of the
    fleet saw new shapes and contributed them to the shared store."""
    stand.publish("m", 3000, [1])
    stand.traffic("m", {1: 10})
    (tmp_path / "other").mkdir()
    with ShapeStore(tmp_path / "other", ShapeStoreSettings(), time.time) as other_shapes:
        other_shapes.record([ShapeObservation("m", "serving_default", batch(5), time.time())
                             for _ in range(40)])
        assert ShapeContributor(SharedDirectoryStore(tmp_path / "fleet", LeaseBook("other", 30.0)),
                                other_shapes, 30.0).contribute()
    here = SharedDirectoryStore(tmp_path / "fleet", LeaseBook("here", 30.0))
    fleet = CoverageRebuilds(FleetShapeSource(here, stand.store, 30.0), stand.rebuilds.published,
                             stand.root / "incoming", "serving_default", stand.clock)
    policy = replace(POLICY, rebuild_after_seconds=0)

    assert stand.due(policy) == []  # this replica's own traffic is covered
    (planned,) = fleet.due(stand.journal, lambda model: policy, stand.paused.__contains__)
    assert (planned.model, planned.version) == ("m", 3001)
    assert planned.reason.startswith("coverage 0.20 below 0.8 for 0 s (10 of 50 recent requests)")
    assert planned.reason.endswith("not built for x:DT_FLOAT[5x16]")
