"""The tap under failure: slow and dead upstreams, deadlines, clients that hang up."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry
from tensorflow_serving.apis import prediction_service_pb2_grpc

from sidecar.metrics import TapMetrics
from sidecar.shapes import ShapeStore, ShapeStoreSettings
from sidecar.tap.errors import TapSettingsError, TapStartError
from sidecar.tap.server import TapServer, serve_tap
from sidecar.tap.settings import TapSettings
from tests.support.e2e import free_port
from tests.support.standin_models import predict_request
from tests.support.tfserving_standin import StandinHandle, StandinSettings, start_standin
from tests.tap.conftest import LoopThread

REPO = Path(__file__).resolve().parents[2]
DELAY = 1.5


@pytest.fixture(scope="module")
def served_base(tmp_path_factory: pytest.TempPathFactory, affine_version: Path) -> Path:
    base = tmp_path_factory.mktemp("served") / "m"
    shutil.copytree(affine_version, base / "1")
    return base


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShapeStore]:
    with ShapeStore(tmp_path_factory.mktemp("state"), ShapeStoreSettings(), time.time) as opened:
        yield opened


@pytest.fixture(scope="module")
def slow_standin(served_base: Path) -> Iterator[StandinHandle]:
    handle = start_standin(
        StandinSettings(model_name="m", model_base_path=served_base, request_delay_seconds=DELAY)
    )
    yield handle
    handle.stop(0)


@pytest.fixture(scope="module")
def registry() -> CollectorRegistry:
    """The slow tap's metrics."""
    return CollectorRegistry()


@pytest.fixture(scope="module")
def slow_tap(
    loop_thread: LoopThread, slow_standin: StandinHandle, store: ShapeStore,
    registry: CollectorRegistry,
) -> Iterator[TapServer]:
    settings = TapSettings(listen="127.0.0.1:0", upstream=slow_standin.address)
    server = loop_thread.run(serve_tap(settings, store, TapMetrics(registry, None)))
    yield server
    loop_thread.run(server.stop(0))


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _stub(address: str) -> tuple[prediction_service_pb2_grpc.PredictionServiceStub, grpc.Channel]:
    channel = grpc.insecure_channel(address)
    return prediction_service_pb2_grpc.PredictionServiceStub(channel), channel


def test_short_deadline_on_slow_upstream_is_deadline_exceeded(
    slow_tap: TapServer, slow_standin: StandinHandle, registry: CollectorRegistry
) -> None:
    abandoned = ("tftrt_sidecar_tap_client_abandoned_total",
                 {"method": "Predict", "code": "DEADLINE_EXCEEDED"})
    before = _sample(registry, abandoned[0], **abandoned[1])
    stub, channel = _stub(f"127.0.0.1:{slow_tap.port}")
    with channel:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(predict_request("m"), timeout=0.3)
        elapsed = time.monotonic() - started
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert elapsed < 1.0
    # The upstream saw the client's remaining deadline, not an unbounded call. gRPC
    # sends timeouts rounded up to its wire units, so a few ms above 0.3 s can appear.
    remaining = slow_standin.calls()[-1].time_remaining
    assert remaining is not None and 0 < remaining <= 0.31
    # The client's own deadline passed: counted apart, never as an upstream error.
    assert _eventually(lambda: _sample(registry, abandoned[0], **abandoned[1]) == before + 1)
    assert slow_tap.stats.abandoned_by_code["DEADLINE_EXCEEDED"] >= 1
    assert _sample(registry, "tftrt_sidecar_tap_upstream_errors_total",
                   code="DEADLINE_EXCEEDED") == 0
    assert slow_tap.stats.upstream_errors == 0


def test_call_without_deadline_reaches_upstream_without_one(
    slow_tap: TapServer, slow_standin: StandinHandle
) -> None:
    stub, channel = _stub(f"127.0.0.1:{slow_tap.port}")
    with channel:
        assert stub.Predict(predict_request("m")).model_spec.name == "m"
    remaining = slow_standin.calls()[-1].time_remaining
    assert remaining is None or remaining > 1e6


def test_client_hanging_up_mid_call_leaves_tap_serving(
    slow_tap: TapServer, slow_standin: StandinHandle, registry: CollectorRegistry
) -> None:
    cancelled = {"method": "Predict", "code": "CANCELLED"}
    before = _sample(registry, "tftrt_sidecar_tap_client_abandoned_total", **cancelled)
    calls_before = len(slow_standin.calls())
    stub, channel = _stub(f"127.0.0.1:{slow_tap.port}")
    with channel:
        pending = stub.Predict.future(predict_request("m"), timeout=10)
        assert _eventually(lambda: len(slow_standin.calls()) > calls_before)  # in TF Serving
        assert pending.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            pending.result()
    assert _eventually(lambda: _sample(
        registry, "tftrt_sidecar_tap_client_abandoned_total", **cancelled) == before + 1)
    assert _sample(registry, "tftrt_sidecar_tap_upstream_errors_total", code="CANCELLED") == 0
    assert slow_tap.stats.upstream_errors == 0
    channel2_stub, channel2 = _stub(f"127.0.0.1:{slow_tap.port}")
    with channel2:
        assert channel2_stub.Predict(predict_request("m"), timeout=10).model_spec.name == "m"


class _TimingOutUpstream(grpc.GenericRpcHandler):
    """TEST DOUBLE for a TF Serving that answers DEADLINE_EXCEEDED itself (its own timeout,
    e.g. a batching queue), whatever deadline the caller has."""

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "batching queue timeout")
            raise AssertionError  # abort raises

        return grpc.unary_unary_rpc_method_handler(answer)


def test_upstreams_own_deadline_exceeded_is_an_upstream_error(
    loop_thread: LoopThread, store: ShapeStore
) -> None:
    upstream = grpc.server(ThreadPoolExecutor(2))
    upstream.add_generic_rpc_handlers((_TimingOutUpstream(),))
    port = upstream.add_insecure_port("127.0.0.1:0")
    upstream.start()
    registry = CollectorRegistry()
    settings = TapSettings(listen="127.0.0.1:0", upstream=f"127.0.0.1:{port}")
    server = loop_thread.run(serve_tap(settings, store, TapMetrics(registry, None)))
    try:
        stub, channel = _stub(f"127.0.0.1:{server.port}")
        with channel, pytest.raises(grpc.RpcError) as error:
            stub.Predict(predict_request("m"), timeout=30)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert _eventually(lambda: _sample(registry, "tftrt_sidecar_tap_upstream_errors_total",
                                           code="DEADLINE_EXCEEDED") == 1)
        assert _sample(registry, "tftrt_sidecar_tap_client_abandoned_total",
                       method="Predict", code="DEADLINE_EXCEEDED") == 0
    finally:
        loop_thread.run(server.stop(0))
        upstream.stop(0)


def test_killed_upstream_gives_unavailable_fast_and_recovers(
    loop_thread: LoopThread, served_base: Path, store: ShapeStore
) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests/support/tfserving_standin.py"),
            f"--port={port}",
            "--model_name=m",
            f"--model_base_path={served_base}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    settings = TapSettings(
        listen="127.0.0.1:0", upstream=f"127.0.0.1:{port}", upstream_max_reconnect_backoff_ms=300
    )
    server = loop_thread.run(serve_tap(settings, store))
    restarted: StandinHandle | None = None
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("Running gRPC ModelServer")
        stub, channel = _stub(f"127.0.0.1:{server.port}")
        with channel:
            assert stub.Predict(predict_request("m"), timeout=10).model_spec.name == "m"
            process.kill()
            process.wait(10)
            for _ in range(3):
                started = time.monotonic()
                with pytest.raises(grpc.RpcError) as error:
                    stub.Predict(predict_request("m"), timeout=30)
                assert error.value.code() == grpc.StatusCode.UNAVAILABLE
                assert time.monotonic() - started < 1.0
            restarted = start_standin(
                StandinSettings(port=port, model_name="m", model_base_path=served_base)
            )
            deadline = time.monotonic() + 5
            while True:
                try:
                    stub.Predict(predict_request("m"), timeout=10)
                    break
                except grpc.RpcError as again:
                    assert again.code() == grpc.StatusCode.UNAVAILABLE
                    assert time.monotonic() < deadline, "tap did not reconnect"
                    time.sleep(0.05)
        assert server.stats.calls_by_code["UNAVAILABLE"] >= 3
    finally:
        if process.poll() is None:
            process.kill()
        if restarted is not None:
            restarted.stop(0)
        loop_thread.run(server.stop(0))


def test_upstream_that_never_existed_gives_unavailable(
    loop_thread: LoopThread, store: ShapeStore
) -> None:
    settings = TapSettings(listen="127.0.0.1:0", upstream=f"127.0.0.1:{free_port()}")
    server = loop_thread.run(serve_tap(settings, store))
    try:
        stub, channel = _stub(f"127.0.0.1:{server.port}")
        with channel:
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as error:
                stub.Predict(predict_request("m"), timeout=30)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < 1.0
    finally:
        loop_thread.run(server.stop(0))


def test_bad_settings_and_taken_port_are_reported(
    loop_thread: LoopThread, slow_tap: TapServer, store: ShapeStore
) -> None:
    bad_settings: list[dict[str, Any]] = [
        {"listen": "nowhere"},
        {"queue_size": 0},
        {"sample_rate": 1.5},
        {"max_message_bytes": 1 << 32},
    ]
    for bad in bad_settings:
        with pytest.raises(TapSettingsError):
            TapSettings(**{"listen": "127.0.0.1:0", "upstream": "127.0.0.1:1", **bad})
    # grpc sets SO_REUSEPORT by default, so take the port with a plain listening socket.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        settings = TapSettings(listen=f"127.0.0.1:{taken}", upstream="127.0.0.1:1")
        with pytest.raises(TapStartError):
            loop_thread.run(serve_tap(settings, store))
