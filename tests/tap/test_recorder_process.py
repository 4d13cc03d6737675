"""The tap in its own process (`TapProcess`), as `tftrt-sidecar run` starts it: real child
processes, real sockets, the real shape store and the real metrics objects."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry
from tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from sidecar.metrics import TapMetrics
from sidecar.shapes import ShapeStore, ShapeStoreSettings
from sidecar.tap.child import ShippingObserver, apply_events
from sidecar.tap.errors import TapStartError
from sidecar.tap.process import TapProcess
from sidecar.tap.settings import TapSettings
from sidecar.tap.stats import TapStats
from tests.support.e2e import free_port
from tests.support.standin_models import predict_request
from tests.support.tfserving_standin import StandinHandle, StandinSettings, start_standin

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory, affine_version: Path) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("served") / "m"
    shutil.copytree(affine_version, base / "1")
    handle = start_standin(StandinSettings(model_name="m", model_base_path=base))
    yield handle
    handle.stop(0)


def _predict(port: int | None, batch: int) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(predict_request("m", batch), timeout=10)


def _eventually(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_child_forwards_records_and_feeds_the_parents_metrics(
        tmp_path: Path, standin: StandinHandle) -> None:
    registry = CollectorRegistry()
    tap = TapProcess(TapSettings(listen="127.0.0.1:0", upstream=standin.address),
                     tmp_path, observer=TapMetrics(registry, None))
    tap.start()
    try:
        assert tap.pid != os.getpid() and tap.serving
        assert _predict(tap.port, 3).outputs["y"].tensor_shape.dim[0].size == 3

        def calls() -> float | None:
            return registry.get_sample_value(
                "tftrt_sidecar_tap_calls_total", {"method": "Predict", "code": "OK"})

        def recorded() -> float | None:
            return registry.get_sample_value(
                "tftrt_sidecar_tap_requests_total", {"model": "m", "prebuilt": "false"})

        assert _eventually(lambda: calls() == 1.0 and recorded() == 1.0)
        assert registry.get_sample_value(
            "tftrt_sidecar_tap_latency_seconds_count", {"method": "Predict"}) == 1.0
        with grpc.insecure_channel(f"127.0.0.1:{tap.port}") as channel:
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                models.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(),
                                                 timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert _eventually(lambda: registry.get_sample_value(
            "tftrt_sidecar_tap_refused_calls_total",
            {"method": "HandleReloadConfigRequest"}) == 1.0)
    finally:
        tap.stop()
    assert not tap.serving
    with ShapeStore(tmp_path, ShapeStoreSettings(), time.time) as store:  # the child's writes
        assert [count for _, count in store.shape_set_counts("m", "serving_default")] == [1]


def test_a_killed_child_is_restarted_and_serves_again(
        tmp_path: Path, standin: StandinHandle, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    tap = TapProcess(TapSettings(listen=f"127.0.0.1:{port}", upstream=standin.address),
                     tmp_path, restart_delays=(0.1, 1.0))
    tap.start()
    try:
        first = tap.pid
        assert first is not None
        _predict(port, 1)
        with caplog.at_level(logging.ERROR, logger="sidecar.tap.process"):
            os.kill(first, signal.SIGKILL)
            assert _eventually(lambda: tap.restarts == 1 and tap.serving, 60)
        assert f"exited with code -{signal.SIGKILL.value}" in caplog.text
        assert tap.pid != first
        assert _predict(port, 2).outputs["y"].tensor_shape.dim[0].size == 2
    finally:
        tap.stop()


def test_a_taken_port_fails_the_start(tmp_path: Path, standin: StandinHandle) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        tap = TapProcess(TapSettings(listen=f"127.0.0.1:{taken}", upstream=standin.address),
                         tmp_path)
        with pytest.raises(TapStartError, match=f"127.0.0.1:{taken}"):
            tap.start()
    assert not tap.serving


def test_the_child_does_not_outlive_its_parent(tmp_path: Path, standin: StandinHandle) -> None:
    parent_code = textwrap.dedent(f"""
        import pathlib, sys, time
        from sidecar.tap.settings import TapSettings
        from sidecar.tap.process import TapProcess
        if __name__ == "__main__":
            tap = TapProcess(TapSettings(listen="127.0.0.1:0", upstream={standin.address!r}),
                             pathlib.Path({str(tmp_path)!r}))
            tap.start()
            print(tap.pid, flush=True)
            time.sleep(600)
    """)
    script = tmp_path / "parent.py"
    script.write_text(parent_code)
    parent = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait(10)
        assert _eventually(lambda: not _alive(child), 20)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie has exited


def test_every_observer_callback_crosses_the_pipe() -> None:
    # What the child observes reaches the parent as pickled events over a real pipe.
    shipping = ShippingObserver()
    shipping.forwarded("Predict", grpc.StatusCode.UNAVAILABLE, 0.5)
    shipping.abandoned("Predict", grpc.StatusCode.DEADLINE_EXCEEDED, 0.2)
    shipping.abandoned("Classify", grpc.StatusCode.CANCELLED, 0.1)
    shipping.refused("HandleReloadConfigRequest")
    shipping.dropped("Predict")
    shipping.unparsable("Regress")
    shipping.recorder_failed(OSError("disk full"))
    receiving, sending = multiprocessing.get_context("spawn").Pipe(duplex=False)
    with receiving, sending:
        sending.send(("events", shipping.take()))
        kind, events = receiving.recv()
    stats = TapStats()
    apply_events(events, stats)
    assert kind == "events" and shipping.take() == []
    assert stats.calls_by_code == {"UNAVAILABLE": 1, "DEADLINE_EXCEEDED": 1, "CANCELLED": 1}
    assert stats.abandoned_by_code == {"DEADLINE_EXCEEDED": 1, "CANCELLED": 1}
    assert stats.calls_by_method == {"Predict": 2, "Classify": 1}
    assert stats.refused_by_method == {"HandleReloadConfigRequest": 1}
    assert (stats.dropped_records, stats.unparsable_requests, stats.recorder_failures) == (1, 1, 1)
    assert stats.upstream_errors == 1
