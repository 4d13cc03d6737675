"""The recorder under hostile bodies and failing tasks, in its own process as `tftrt-sidecar
run` starts it (`RecorderProcess`: real child process, sockets, shape store and metrics):
a body nested 100,000 levels deep is counted as unparsable and recording goes on, a 50 MB
body costs the recorder about its size in memory, and a recording task that dies is
started again and reported (log, metric, health)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sidecar.config import Address
from sidecar.metrics import TapMetrics
from sidecar.recorder.process import RecorderProcess
from sidecar.recorder.recording import (
    GrpcRequests,
    PendingCall,
    RecordingTask,
    RecordingWorker,
    RecordQueue,
)
from sidecar.recorder.settings import RecorderSettings, RestRecording
from sidecar.recorder.stats import TapStats
from sidecar.shapes import (
    Refusal,
    ShapeObservation,
    ShapeSet,
    ShapeStore,
    ShapeStoreSettings,
    TensorSpec,
)
from tests.recorder.conftest import LoopThread, mirror, post_rest
from tests.support.e2e import free_port
from tests.support.standin_models import predict_request
from tests.support.waiting import wait_until

PREDICT_PATH = "/v1/models/m:predict"
NORMAL_BODY = json.dumps({"instances": [{"x": [1.0, 2.0]}]}).encode()


@dataclass
class _Recorder:
    """A started recorder process with its REST side, and the metrics it feeds."""

    process: RecorderProcess
    registry: CollectorRegistry
    rest_port: int
    state: Path

    def metric(self, name: str, labels: dict[str, str]) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def recorded(self) -> float:
        return self.metric("tftrt_sidecar_tap_requests_total",
                           {"model": "m", "prebuilt": "false"})

    def unparsable(self) -> float:
        return self.metric("tftrt_sidecar_shape_records_dropped_total", {"reason": "unparsable"})

    def shape_sets(self) -> list[tuple[ShapeSet, int]]:
        with ShapeStore(self.state, ShapeStoreSettings(), time.time) as store:
            return store.shape_set_counts("m", "serving_default")


@pytest.fixture()
def rest_recorder(tmp_path: Path) -> Iterator[_Recorder]:
    """A recorder process taking gRPC and REST mirrored calls (no model is served, so REST
    bodies are typed from their values)."""
    (tmp_path / "serving").mkdir()
    registry = CollectorRegistry()
    rest_port = free_port()
    rest = RestRecording(RecorderSettings(listen=Address("127.0.0.1", rest_port), sample_rate=0.0),
                         tmp_path / "serving")
    process = RecorderProcess(RecorderSettings(listen=Address("127.0.0.1", 0)), tmp_path / "state",
                              observer=TapMetrics(registry, None), rest=rest)
    process.start()
    try:
        yield _Recorder(process, registry, rest_port, tmp_path / "state")
    finally:
        process.stop()


def test_a_deeply_nested_body_is_unparsable_and_rest_recording_goes_on(
        rest_recorder: _Recorder) -> None:
    nested = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert post_rest(rest_recorder.rest_port, PREDICT_PATH, nested)[0] == 200
    assert post_rest(rest_recorder.rest_port, PREDICT_PATH, NORMAL_BODY)[0] == 200
    wait_until(rest_recorder.recorded, 20, "the normal call recorded", done=lambda n: n == 1.0,
               interval=0.1)
    assert rest_recorder.unparsable() == 1.0
    stats = rest_recorder.process.stats
    assert (stats.unparsable_requests, stats.recording_restarts) == (1, 0)
    assert rest_recorder.process.serving
    assert rest_recorder.shape_sets() == [
        (ShapeSet.of({"x": TensorSpec("DT_FLOAT", (1, 2))}), 1)]


def _peak_bytes(pid: int | None) -> int:
    """The process's peak resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def _image_rows(count: int) -> bytes:
    """``count`` named rows of a (224, 224, 3) float image, as JSON."""
    pixel = b"[" + b", ".join([b"0.123456"] * 3) + b"]"
    line = b"[" + b", ".join([pixel] * 224) + b"]"
    image = b"[" + b", ".join([line] * 224) + b"]"
    return b'{"instances": [' + b", ".join([b'{"x": ' + image + b"}"] * count) + b"]}"


def test_a_50_mb_body_costs_the_recorder_about_its_size(rest_recorder: _Recorder) -> None:
    assert post_rest(rest_recorder.rest_port, PREDICT_PATH, NORMAL_BODY)[0] == 200
    wait_until(rest_recorder.recorded, 20, "the first call recorded", done=lambda n: n == 1.0,
               interval=0.1)
    baseline = _peak_bytes(rest_recorder.process.pid)
    body = _image_rows(31)
    assert 48e6 < len(body) < 52e6
    assert post_rest(rest_recorder.rest_port, PREDICT_PATH, body, timeout=60)[0] == 200
    wait_until(rest_recorder.recorded, 300, "the large call recorded", done=lambda n: n == 2.0,
               interval=0.1)
    grown = _peak_bytes(rest_recorder.process.pid) - baseline
    print(f"the recorder's peak memory grew by {grown / 1e6:.0f} MB for a "
          f"{len(body) / 1e6:.0f} MB body (peak before: {baseline / 1e6:.0f} MB)")
    assert grown <= 3 * len(body), f"peak grew by {grown / 1e6:.0f} MB"
    assert (ShapeSet.of({"x": TensorSpec("DT_FLOAT", (31, 224, 224, 3))}), 1) \
        in rest_recorder.shape_sets()


@dataclass(frozen=True)
class _ShareUnreadableOnce:
    """The share of calls Envoy mirrors, which cannot be read the first time the recorder
    asks for it (picklable: it runs in the recorder's process): the recording task asking
    it dies."""

    asked: Path

    def __call__(self) -> float:
        if self.asked.exists():
            return 1.0
        self.asked.touch()
        raise RuntimeError("the share of mirrored calls cannot be read")


def test_a_recording_task_that_dies_is_restarted_and_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    settings = RecorderSettings(listen=Address("127.0.0.1", 0),
                                recording_restart_seconds=(3.0, 3.0))
    recorder = RecorderProcess(settings, tmp_path / "state", observer=TapMetrics(registry, None),
                               share=_ShareUnreadableOnce(tmp_path / "asked"))
    recorder.start()
    try:
        pid = recorder.pid
        with caplog.at_level(logging.WARNING, logger="sidecar"):
            mirror(recorder.port, 1)
            wait_until(lambda: not recorder.serving, 20, "health showing the dead task",
                       interval=0.1)
            assert recorder.stats.stopped_recordings == {"shape-recording"}
            assert registry.get_sample_value("tftrt_sidecar_shape_recording_failures_total",
                                             {"task": "shape-recording"}) == 1.0
            wait_until(lambda: recorder.serving, 20, "health showing the task running again",
                       interval=0.1)
        assert ("shape-recording task died (RuntimeError: the share of mirrored calls cannot "
                "be read)") in caplog.text
        assert "shape-recording task was restarted" in caplog.text
        assert (recorder.stats.recording_restarts, recorder.restarts, recorder.pid) == (1, 0, pid)
        mirror(recorder.port, 2)
        wait_until(lambda: registry.get_sample_value(
            "tftrt_sidecar_tap_requests_total", {"model": "m", "prebuilt": "false"}), 20,
            "the call counted after the restart", done=lambda n: n == 1.0, interval=0.1)
    finally:
        recorder.stop()
    with ShapeStore(tmp_path / "state", ShapeStoreSettings(), time.time) as store:
        assert [count for _, count in store.shape_set_counts("m", "serving_default")] == [1], \
            "the first call's batch was lost, the second recorded"


class _ParserWithABug:
    """The real gRPC request parser, except that a call of model "bug" raises what no
    parser should (RecursionError, as ``json.loads`` did on a deep REST body): a stand-in
    for a parser bug, which no known body triggers any more."""

    def __init__(self) -> None:
        self._real = GrpcRequests()

    def observations(self, call: PendingCall, sample: bool) -> list[ShapeObservation]:
        """The real parser's observations, or RecursionError for model "bug"."""
        observations = self._real.observations(call, sample)
        if observations[0].model == "bug":
            raise RecursionError("maximum recursion depth exceeded")
        return observations

    def method(self, call: PendingCall) -> str:
        """The real label."""
        return self._real.method(call)


class _Store:
    """The real shape store, as the `Recorder` the worker writes to."""

    def __init__(self, store: ShapeStore) -> None:
        self.store = store

    def record(self, observations: Sequence[ShapeObservation]) -> Sequence[Refusal | None]:
        """Store the batch."""
        return self.store.record(observations)


def test_any_parse_failure_costs_only_its_call(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    loop = LoopThread()
    settings = RecorderSettings(listen=Address("127.0.0.1", 0), record_interval_seconds=0.0)
    stats = TapStats()
    try:
        with ShapeStore(tmp_path, ShapeStoreSettings(), time.time) as store:
            async def record_both() -> bool:
                queue = RecordQueue(16, 1 << 20)
                task = RecordingTask(RecordingWorker(queue, _Store(store), stats, settings,
                                                     _ParserWithABug()),
                                     "shape-recording", stats, (0.1, 0.1))
                for model in ("bug", "m", "bug"):
                    assert queue.offer(PendingCall(
                        "Predict", predict_request(model, 1).SerializeToString(), time.time()))
                recorded = await task.wait_recorded(10)
                await task.stop(0)
                return recorded

            with caplog.at_level(logging.ERROR, logger="sidecar"):
                assert loop.run(record_both())
            assert [count for _, count in store.shape_set_counts("m", "serving_default")] == [1]
    finally:
        loop.close()
    assert (stats.unparsable_requests, stats.recording_restarts) == (2, 0)
    assert [record.getMessage().partition(" (")[0] for record in caplog.records] == [
        "cannot read a mirrored Predict call"], "logged once, counted each time"
