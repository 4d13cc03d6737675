"""The tap forwards every call unchanged: client stub -> tap -> TF Serving stand-in."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from sidecar.shapes import (
    Refusal,
    ShapeObservation,
    ShapeSet,
    ShapeStore,
    ShapeStoreSettings,
    TensorSpec,
)
from sidecar.tap.server import TapServer, serve_tap
from sidecar.tap.settings import TapSettings
from tests.support.standin_models import example, predict_request
from tests.support.tfserving_standin import StandinHandle, StandinSettings, start_standin
from tests.tap.conftest import LoopThread

PREDICT = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture(scope="module")
def served_base(tmp_path_factory: pytest.TempPathFactory, affine_version: Path) -> Path:
    base = tmp_path_factory.mktemp("served") / "m"
    shutil.copytree(affine_version, base / "1")
    return base


@pytest.fixture(scope="module")
def standin(served_base: Path) -> Iterator[Any]:
    handle = start_standin(StandinSettings(model_name="m", model_base_path=served_base))
    yield handle
    handle.stop(0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShapeStore]:
    with ShapeStore(tmp_path_factory.mktemp("state"), ShapeStoreSettings(), time.time) as opened:
        yield opened


@pytest.fixture(scope="module")
def tap(loop_thread: LoopThread, standin: StandinHandle, store: ShapeStore) -> Iterator[TapServer]:
    settings = TapSettings(listen="127.0.0.1:0", upstream=standin.address, sample_rate=1.0)
    server = loop_thread.run(serve_tap(settings, store))
    yield server
    loop_thread.run(server.stop(1))


def _address(tap: TapServer) -> str:
    return f"127.0.0.1:{tap.port}"


def _prediction(address: str) -> tuple[Any, grpc.Channel]:
    channel = grpc.insecure_channel(address)
    return prediction_service_pb2_grpc.PredictionServiceStub(channel), channel


def _examples_requests() -> tuple[Any, Any, Any]:
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "m"
    classify.model_spec.signature_name = "classify"
    classify.input.example_list.examples.extend([example([1, 2, 3, 4])] * 3)
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "m"
    regress.model_spec.signature_name = "regress"
    regress.input.CopyFrom(classify.input)
    multi = inference_pb2.MultiInferenceRequest()
    multi.input.CopyFrom(classify.input)
    task = multi.tasks.add()
    task.model_spec.name = "m"
    task.model_spec.signature_name = "regress"
    task.method_name = "tensorflow/serving/regress"
    return classify, regress, multi


def test_predict_is_byte_identical(standin: StandinHandle, tap: TapServer) -> None:
    request = predict_request("m", batch=3)
    direct, direct_channel = _prediction(standin.address)
    tapped, tapped_channel = _prediction(_address(tap))
    with direct_channel, tapped_channel:
        expected = direct.Predict(request, timeout=10)
        got = tapped.Predict(request, timeout=10)
        assert got.SerializeToString() == expected.SerializeToString()
        raw = request.SerializeToString()
        raw_direct = direct_channel.unary_unary(PREDICT)(raw, timeout=10)
        raw_tapped = tapped_channel.unary_unary(PREDICT)(raw, timeout=10)
    assert isinstance(raw_tapped, bytes)
    assert raw_tapped == raw_direct == expected.SerializeToString()


def test_every_method_is_byte_identical(standin: StandinHandle, tap: TapServer) -> None:
    classify, regress, multi = _examples_requests()
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata.model_spec.name = "m"
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "m"
    results = []
    for address in (standin.address, _address(tap)):
        with grpc.insecure_channel(address) as channel:
            predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            results.append(
                [
                    predict.Classify(classify, timeout=10).SerializeToString(),
                    predict.Regress(regress, timeout=10).SerializeToString(),
                    predict.MultiInference(multi, timeout=10).SerializeToString(),
                    predict.GetModelMetadata(metadata, timeout=10).SerializeToString(),
                    models.GetModelStatus(status, timeout=10).SerializeToString(),
                ]
            )
    assert results[0] == results[1]


def test_shapes_and_samples_are_recorded(
    loop_thread: LoopThread, tap: TapServer, store: ShapeStore
) -> None:
    classify, _, multi = _examples_requests()
    request = predict_request("m", batch=5)
    stub, channel = _prediction(_address(tap))
    with channel:
        for _ in range(3):
            stub.Predict(request, timeout=10)
        stub.Classify(classify, timeout=10)
        stub.MultiInference(multi, timeout=10)
    assert loop_thread.run(tap.wait_recorded(10))
    five = ShapeSet.of({"x": TensorSpec("DT_FLOAT", (5, 4))})
    top = store.top_shape_sets("m", "serving_default", 10)
    assert five in top.shape_sets
    assert dict(store.shape_set_counts("m", "serving_default"))[five] >= 3
    examples = ShapeSet.of({"inputs": TensorSpec("DT_STRING", (3,))})
    assert store.top_shape_sets("m", "classify", 1).shape_sets == [examples]
    assert examples in store.top_shape_sets("m", "regress", 1).shape_sets
    assert request in store.predict_requests("m")
    assert tap.stats.requests_by_model["m"] >= 5
    assert tap.stats.calls_by_method["Predict"] >= 3


def test_metadata_passes_both_ways(standin: StandinHandle, tap: TapServer) -> None:
    stub, channel = _prediction(_address(tap))
    sent = (("x-request-id", "abc-123"), ("x-trace-bin", b"\x00\x01\xff"))
    echo = ("x-standin-echo-id", "42")
    with channel:
        _, call = stub.Predict.with_call(predict_request("m"), timeout=10, metadata=(*sent, echo))
    assert echo in tuple(call.trailing_metadata())
    received = standin.calls()[-1].metadata
    for item in (*sent, echo):
        assert item in received


def test_errors_and_details_pass_through(
    loop_thread: LoopThread, standin: StandinHandle, tap: TapServer, store: ShapeStore
) -> None:
    bad_input = predict_request("m")
    bad_input.inputs["nope"].CopyFrom(bad_input.inputs["x"])
    requests = [
        predict_request("unknown-model").SerializeToString(),
        predict_request("m", version=99).SerializeToString(),
        bad_input.SerializeToString(),
        predict_request("m", signature="missing").SerializeToString(),
        b"\xff\xff\xff\xff not a protobuf",
    ]
    errors_before = tap.stats.upstream_errors
    outcomes = []
    for address in (standin.address, _address(tap)):
        with grpc.insecure_channel(address) as channel:
            call = channel.unary_unary(PREDICT)
            seen = []
            for raw in requests:
                with pytest.raises(grpc.RpcError) as error:
                    call(raw, timeout=10)
                seen.append((error.value.code(), error.value.details()))
            outcomes.append(seen)
    assert outcomes[0] == outcomes[1]
    assert [code for code, _ in outcomes[1][:4]] == [
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
    ]
    assert tap.stats.upstream_errors - errors_before == len(requests)
    assert loop_thread.run(tap.wait_recorded(10))
    assert "unknown-model" not in {model for model, _ in store.signatures()}


def test_methods_off_the_allow_list_are_refused_and_counted(
    standin: StandinHandle, tap: TapServer
) -> None:
    seen_before = len(standin.calls())
    refused_before = dict(tap.stats.refused_by_method)
    paths = [
        "/tensorflow.serving.SessionService/SessionRun",
        "/tensorflow.serving.ModelService/NoSuchMethod",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/tensorflow.ProfilerService/Profile",
    ]
    with grpc.insecure_channel(_address(tap)) as channel:
        for path in paths:
            with pytest.raises(grpc.RpcError) as error:
                channel.unary_unary(path)(b"", timeout=5)
            assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
            details = error.value.details()
            assert path in details and "tensorflow.serving.PredictionService/Predict" in details
        # A streaming call is refused at once, without the client closing its side.
        stream = channel.stream_stream(paths[0])(iter([b"x"] * 1000), timeout=5)
        with pytest.raises(grpc.RpcError) as error:
            next(stream)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # A 4,000-character path is echoed shortened (whole, with the rest of the answer
        # it could pass the metadata limit and turn the answer into another status).
        with pytest.raises(grpc.RpcError) as error:
            channel.unary_unary("/x/" + "y" * 4000)(b"", timeout=5)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert len(error.value.details()) < 1000
    refused = tap.stats.refused_by_method
    assert refused["SessionRun"] - refused_before.get("SessionRun", 0) == 2
    assert refused["other"] - refused_before.get("other", 0) == 3
    assert refused["Profile"] - refused_before.get("Profile", 0) == 1
    assert len(standin.calls()) == seen_before, "a refused call reached TF Serving"


def test_oversized_request_is_refused_and_tap_survives(
    loop_thread: LoopThread, standin: StandinHandle, store: ShapeStore
) -> None:
    settings = TapSettings(
        listen="127.0.0.1:0", upstream=standin.address, max_message_bytes=64 << 10
    )
    server = loop_thread.run(serve_tap(settings, store))
    try:
        big = predict_pb2.PredictRequest()
        big.model_spec.name = "m"
        big.inputs["x"].CopyFrom(tf.make_tensor_proto(np.zeros((8192, 4), np.float32)))
        stub, channel = _prediction(f"127.0.0.1:{server.port}")
        with channel:
            with pytest.raises(grpc.RpcError) as error:
                stub.Predict(big, timeout=10)
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert stub.Predict(predict_request("m"), timeout=10).outputs["y"].dtype
    finally:
        loop_thread.run(server.stop(0))


class _BlockedRecorder:
    """A recorder that holds the first batch until released (a slow disk)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.batches = 0

    def record(self, observations: Sequence[ShapeObservation]) -> Sequence[Refusal | None]:
        self.batches += 1
        self.release.wait(20)
        return [None] * len(observations)


def test_full_queue_drops_and_counts_without_slowing_calls(
    loop_thread: LoopThread, standin: StandinHandle
) -> None:
    recorder = _BlockedRecorder()
    settings = TapSettings(
        listen="127.0.0.1:0", upstream=standin.address, queue_size=2, record_batch_size=1
    )
    server = loop_thread.run(serve_tap(settings, recorder))
    try:
        stub, channel = _prediction(f"127.0.0.1:{server.port}")
        with channel:
            for _ in range(12):
                stub.Predict(predict_request("m"), timeout=10)
        # One batch is held by the recorder, two wait in the queue, the rest were dropped.
        assert server.stats.dropped_records == 9
        assert server.stats.calls_by_code["OK"] == 12
        recorder.release.set()
        assert loop_thread.run(server.wait_recorded(10))
        assert recorder.batches == 3
    finally:
        recorder.release.set()
        loop_thread.run(server.stop(1))


def test_clients_cannot_reload_tf_servings_config(
    standin: StandinHandle, tap: TapServer, served_base: Path
) -> None:
    request = model_management_pb2.ReloadConfigRequest()
    for name in ("m", "m2"):
        model = request.config.model_config_list.config.add()
        model.name = name
        model.base_path = str(served_base)
    refused_before = tap.stats.refused_by_method["HandleReloadConfigRequest"]
    with grpc.insecure_channel(_address(tap)) as channel:
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            models.HandleReloadConfigRequest(request, timeout=30)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "HandleReloadConfigRequest" in error.value.details()
        assert "managed by tftrt-sidecar" in error.value.details()
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as missing:
            stub.Predict(predict_request("m2"), timeout=10)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert stub.Predict(predict_request("m"), timeout=10).model_spec.name == "m"
    assert tap.stats.refused_by_method["HandleReloadConfigRequest"] == refused_before + 1
    assert "HandleReloadConfigRequest" not in {call.method for call in standin.calls()}


class _EventLog:
    """An observer that keeps what it is told (what a metrics exporter would count)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def forwarded(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.events.append(("forwarded", (method, code)))

    def abandoned(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.events.append(("abandoned", (method, code)))

    def refused(self, method: str) -> None:
        self.events.append(("refused", method))

    def dropped(self, method: str) -> None:
        self.events.append(("dropped", method))

    def recorded(self, observation: ShapeObservation, refusal: Refusal | None) -> None:
        self.events.append(("recorded", (observation.model, refusal)))

    def unparsable(self, method: str) -> None:
        self.events.append(("unparsable", method))

    def recorder_failed(self, error: Exception) -> None:
        self.events.append(("recorder_failed", error))


def test_observer_sees_calls_and_recordings(
    loop_thread: LoopThread, standin: StandinHandle, store: ShapeStore
) -> None:
    observer = _EventLog()
    settings = TapSettings(listen="127.0.0.1:0", upstream=standin.address)
    server = loop_thread.run(serve_tap(settings, store, observer))
    try:
        stub, channel = _prediction(f"127.0.0.1:{server.port}")
        with channel:
            stub.Predict(predict_request("m"), timeout=10)
            with pytest.raises(grpc.RpcError):
                stub.Predict(predict_request("nope"), timeout=10)
        assert loop_thread.run(server.wait_recorded(10))
    finally:
        loop_thread.run(server.stop(1))
    assert observer.events == [
        ("forwarded", ("Predict", grpc.StatusCode.OK)),
        ("recorded", ("m", None)),
        ("forwarded", ("Predict", grpc.StatusCode.NOT_FOUND)),
    ] or observer.events == [
        ("forwarded", ("Predict", grpc.StatusCode.OK)),
        ("forwarded", ("Predict", grpc.StatusCode.NOT_FOUND)),
        ("recorded", ("m", None)),
    ]
