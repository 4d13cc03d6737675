"""A real Envoy in front of the TF Serving stand-in: what clients see is what TF Serving
answers, what they may not call is refused at Envoy, and a sample reaches the recorder."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from sidecar.base.errors import ConfigError
from sidecar.envoy.binary import EnvoyBinary
from sidecar.envoy.errors import EnvoyConfigError
from sidecar.envoy.process import EnvoyProcess
from sidecar.envoy.runtime import EnvoyAdmin
from sidecar.envoy.settings import Address, EnvoySettings
from sidecar.shapes import ShapeSet, TensorSpec
from tests.envoy.conftest import Front, envoy_settings
from tests.support.e2e import free_port
from tests.support.standin_models import predict_request
from tests.support.tfserving_standin import StandinHandle
from tests.support.waiting import wait_until

PREDICT = "/tensorflow.serving.PredictionService/Predict"


def test_every_allowed_method_is_byte_identical(front: Front) -> None:
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata.model_spec.name = "m"
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "m"
    raw = predict_request("m", batch=3).SerializeToString()
    answers = []
    for address in (front.standin.address, front.address):
        with grpc.insecure_channel(address) as channel:
            answers.append([
                channel.unary_unary(PREDICT)(raw, timeout=10),
                prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
                    metadata, timeout=10).SerializeToString(),
                model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
                    status, timeout=10).SerializeToString(),
            ])
    assert answers[0] == answers[1]


def test_errors_deadlines_and_metadata_pass_through(front: Front) -> None:
    requests = [predict_request("unknown-model").SerializeToString(),
                predict_request("m", signature="missing").SerializeToString(),
                b"\xff\xff\xff\xff not a protobuf"]
    outcomes = []
    for address in (front.standin.address, front.address):
        with grpc.insecure_channel(address) as channel:
            seen = []
            for raw in requests:
                with pytest.raises(grpc.RpcError) as error:
                    channel.unary_unary(PREDICT)(raw, timeout=10)
                seen.append((error.value.code(), error.value.details()))
            outcomes.append(seen)
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][0][0] == grpc.StatusCode.NOT_FOUND

    sent = (("x-request-id", "abc-123"), ("x-trace-bin", b"\x00\x01\xff"))
    echo = ("x-standin-echo-id", "42")
    with grpc.insecure_channel(front.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        _, call = stub.Predict.with_call(predict_request("m"), timeout=7.5,
                                         metadata=(*sent, echo))
    assert echo in tuple(call.trailing_metadata())
    received = front.standin.calls()[-1]
    for item in (*sent, echo):
        assert item in received.metadata
    # The client's deadline reaches TF Serving (Envoy re-encodes it to the millisecond).
    assert received.time_remaining is not None and 6.5 < received.time_remaining < 7.6


def test_a_large_tensor_passes_whole(front: Front) -> None:
    big = predict_pb2.PredictRequest()
    big.model_spec.name = "m"
    big.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((150_000, 4), np.float32)))  # 2.4 MB
    options = [("grpc.max_receive_message_length", 64 << 20)]
    answers = []
    for address in (front.standin.address, front.address):
        with grpc.insecure_channel(address, options=options) as channel:
            answers.append(channel.unary_unary(PREDICT)(big.SerializeToString(), timeout=30))
    assert answers[0] == answers[1] and len(answers[1]) > 2_000_000


def test_clients_cannot_reconfigure_tf_serving(front: Front) -> None:
    before = len(front.standin.calls())
    with grpc.insecure_channel(front.address) as channel:
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            models.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(),
                                             timeout=5)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "HandleReloadConfigRequest" in error.value.details()
        for path in ("/tensorflow.serving.SessionService/SessionRun", "/x/" + "y" * 4000):
            with pytest.raises(grpc.RpcError) as error:
                channel.unary_unary(path)(b"", timeout=5)
            assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert len(error.value.details()) < 600
    assert len(front.standin.calls()) == before, "a refused call reached TF Serving"


def test_mirrored_shapes_reach_the_shape_store(front: Front) -> None:
    before = front.recorded()
    with grpc.insecure_channel(front.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(5):
            stub.Predict(predict_request("m", batch=7), timeout=10)
    front.wait_recorded(before + 5)
    counts = dict(front.store.shape_set_counts("m", "serving_default"))
    assert counts[ShapeSet.of({"x": TensorSpec("DT_FLOAT", (7, 4))})] >= 5
    assert front.store.samples("m"), "sample_rate=1 keeps requests whole for replay"


def test_a_dead_recorder_leaves_clients_unaffected(standin: StandinHandle, tmp_path: Path
                                                    ) -> None:
    envoy = EnvoyProcess(envoy_settings(standin.address, free_port()), EnvoyBinary.locate(),
                         tmp_path)
    envoy.start()
    try:
        with grpc.insecure_channel(str(envoy.settings.listen)) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            started = time.perf_counter()
            for _ in range(20):
                assert stub.Predict(predict_request("m"), timeout=5).outputs["y"].dtype
            assert time.perf_counter() - started < 10
    finally:
        envoy.stop()


def test_upstream_down_is_unavailable_at_once(tmp_path: Path) -> None:
    envoy = EnvoyProcess(envoy_settings(f"127.0.0.1:{free_port()}", free_port()),
                         EnvoyBinary.locate(), tmp_path)
    envoy.start()
    try:
        with grpc.insecure_channel(str(envoy.settings.listen)) as channel:
            started = time.perf_counter()
            with pytest.raises(grpc.RpcError) as error:
                channel.unary_unary(PREDICT)(predict_request("m").SerializeToString(),
                                             timeout=20)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
            assert time.perf_counter() - started < 5
    finally:
        envoy.stop()


def test_a_killed_envoy_is_restarted(front: Front) -> None:
    first = front.envoy.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: front.envoy.pid != first and front.envoy.serving, 20,
               "Envoy restarted and serving")
    assert front.envoy.pid != first and front.envoy.restarts >= 1
    with grpc.insecure_channel(front.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert stub.Predict(predict_request("m"), timeout=10).outputs["y"].dtype


def test_invalid_settings_are_refused_before_envoy_starts(standin: StandinHandle,
                                                         tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        EnvoySettings(
            listen=Address("127.0.0.1", free_port()), upstream=Address.parse(standin.address, "u"),
            recorder=Address("127.0.0.1", free_port()), admin=Address("0.0.0.0", free_port()))
    with pytest.raises(ConfigError, match="host:port"):
        Address.parse("no-port", "upstream")
    # Envoy listens on IP addresses only: a host name is refused by Envoy's own check.
    bad = EnvoySettings(listen=Address("tap.example", free_port()),
                        upstream=Address.parse(standin.address, "u"),
                        recorder=Address("127.0.0.1", free_port()),
                        admin=Address("127.0.0.1", free_port()))
    envoy = EnvoyProcess(bad, EnvoyBinary.locate(), tmp_path)
    with pytest.raises(EnvoyConfigError, match="Envoy refused"):
        envoy.start()
    assert envoy.pid is None, "Envoy must not start on a configuration it refused"




def test_the_mirrored_share_changes_live(front: Front) -> None:
    admin = EnvoyAdmin(front.envoy.settings.admin)
    try:
        admin.set_mirror_fraction(0.0)
        assert admin.mirror_fraction() == 0.0
        before = front.recorded()
        requests_before = admin.client_requests()
        with grpc.insecure_channel(front.address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for _ in range(20):
                stub.Predict(predict_request("m", batch=2), timeout=10)
        assert admin.client_requests() - requests_before == 20
        assert front.loop.run(front.recorder.wait_recorded(5))
        assert front.recorded() == before, "nothing is mirrored at a share of 0"
        admin.set_mirror_fraction(0.5)
        with grpc.insecure_channel(front.address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for _ in range(200):
                stub.Predict(predict_request("m", batch=2), timeout=10)
        front.wait_recorded(before + 60)
        assert 60 <= front.recorded() - before <= 140, "about half of 200 calls"
    finally:
        admin.set_mirror_fraction(1.0)
    with pytest.raises(ConfigError, match="within"):
        admin.set_mirror_fraction(1.5)


def test_the_stats_listener_exposes_only_prometheus_stats(standin: StandinHandle,
                                                          tmp_path: Path) -> None:
    settings = envoy_settings(standin.address, free_port(),
                              stats_listen=Address("127.0.0.1", free_port()))
    envoy = EnvoyProcess(settings, EnvoyBinary.locate(), tmp_path)
    envoy.start()
    try:
        base = f"http://{settings.stats_listen}"
        with urllib.request.urlopen(f"{base}/stats/prometheus", timeout=5) as answer:
            text = answer.read().decode()
        assert "envoy_cluster_upstream_rq_total" in text or "envoy_server_live" in text
        for path in ("/quitquitquit", "/runtime_modify?x=1", "/config_dump", "/stats"):
            request = urllib.request.Request(base + path, method="POST")
            with pytest.raises(urllib.error.HTTPError) as error:
                urllib.request.urlopen(request, timeout=5)
            assert error.value.code == 404
        assert envoy.serving, "the stats listener must not reach the admin API's actions"
    finally:
        envoy.stop()
