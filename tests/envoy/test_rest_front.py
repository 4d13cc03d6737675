"""A real Envoy in front of the TF Serving stand-in's REST API (TEST-ONLY stand-in: the TF
Serving binary cannot run here): clients see what TF Serving answers, paths they may not
call are refused at Envoy, and a sample of inference calls reaches the shape store with
the shape sets and dtypes the gRPC path records for the same calls."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import http.client
import json
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from sidecar.base.errors import ConfigError
from sidecar.envoy.binary import EnvoyBinary
from sidecar.envoy.bootstrap import REST_MIRROR_RUNTIME_KEY
from sidecar.envoy.errors import EnvoyConfigError
from sidecar.envoy.process import EnvoyProcess
from sidecar.envoy.settings import Address
from sidecar.shapes import ShapeSet, ShapeStore, TensorSpec
from tests.envoy.conftest import envoy_settings
from tests.envoy.rest_front import (
    ROWS,
    RestFront,
    call,
    rest_settings,
    running_rest_front,
    save_serving,
    serving_stand_ins,
    stored,
)
from tests.recorder.conftest import LoopThread
from tests.support.e2e import free_port
from tests.support.standin_models import example, predict_request
from tests.support.standin_rest import RestStandin
from tests.support.tfserving_standin import StandinHandle


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A serving base: the affine model as m, a float64/int64 model as typed."""
    return save_serving(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def stand_ins(serving: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[StandinHandle, RestStandin]]:
    """The gRPC stand-in serving both models, and its REST port."""
    with serving_stand_ins(serving, tmp_path_factory.mktemp("config")) as both:
        yield both


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, serving: Path,
          stand_ins: tuple[StandinHandle, RestStandin],
          loop_thread: LoopThread) -> Iterator[RestFront]:
    """Envoy (mirroring every call) in front of both stand-in ports, both recorders behind
    (this module's front: it stands in for the conftest's gRPC-only one)."""
    with running_rest_front(tmp_path_factory.mktemp("rest-front"), serving, stand_ins,
                            loop_thread) as rest_front:
        yield rest_front


CALLS: list[tuple[str, str, object]] = [
    ("POST", "/v1/models/m:predict", {"instances": ROWS}),
    ("POST", "/v1/models/m/versions/1:predict", {"inputs": {"x": ROWS[:2]}}),
    ("POST", "/V1/Models/m:PREDICT", {"inputs": ROWS[:1]}),  # TF Serving ignores case
    ("POST", "/v1/models/m:classify", {"signature_name": "classify",
                                       "examples": [{"x": row} for row in ROWS]}),
    ("POST", "/v1/models/m:regress", {"signature_name": "regress",
                                      "examples": [{"x": ROWS[0]}]}),
    ("POST", "/v1/models/typed:predict", {"instances": [{"a": [1.5, 2.0], "b": 3}]}),
    ("POST", "/v1/models/m/labels/stable:predict", {"instances": ROWS}),
    ("GET", "/v1/models/m", None),
    ("GET", "/v1/models/m/versions/1", None),
    ("GET", "/v1/models/m/metadata", None),
    # Errors are TF Serving's, status and body.
    ("POST", "/v1/models/unknown:predict", {"instances": ROWS}),
    ("POST", "/v1/models/m:predict", {"instances": ROWS, "signature_name": "missing"}),
    ("POST", "/v1/models/m:predict", {"instances": [[1.0]]}),
    ("POST", "/v1/models/m/labels/canary:predict", {"instances": ROWS}),
    ("GET", "/v1/models/m/versions/9", None),
    ("GET", "/v1/models", None),
    ("OPTIONS", "/v1/models/m:predict", None),  # a CORS preflight without an Origin
]


def test_rest_answers_are_byte_identical(front: RestFront) -> None:
    for method, path, body in [*CALLS, ("POST", "/v1/models/m:predict", b"{not json")]:
        raw = body if isinstance(body, bytes) else None
        direct = call(front.rest.address, method, path, None if raw else body, raw)
        proxied = call(front.rest_address, method, path, None if raw else body, raw)
        assert proxied == direct, f"{method} {path}"
    statuses = [call(front.rest_address, method, path, body)[0] for method, path, body in CALLS]
    assert statuses[:10] == [200] * 10 and 200 not in statuses[10:]


def test_requests_reach_tf_serving_unchanged(front: RestFront) -> None:
    sent = {"x-request-id": "abc-123", "authorization": "Bearer t", "user-agent": "probe/1"}
    seen = []
    for address in (front.rest.address, front.rest_address):
        parsed = Address.parse(address, "address")
        connection = http.client.HTTPConnection(parsed.host, parsed.port, timeout=10)
        body = json.dumps({"instances": ROWS}).encode()
        connection.request("POST", "/v1/models/m:predict?trace=1", body=body,
                           headers={**sent, "content-type": "application/json"})
        assert connection.getresponse().read()
        connection.close()
        received = front.rest.requests()[-1]
        seen.append((received.method, received.path, received.body,
                     sorted((k, v) for k, v in received.headers if k != "host")))
    assert seen[0] == seen[1], "Envoy must add, drop or change nothing TF Serving sees"


def test_http2_clients_get_the_same_answers_and_are_recorded(front: RestFront) -> None:
    front.settle()
    body = json.dumps({"instances": ROWS[:1] * 13})
    answers = []
    for address, options in ((front.rest.address, ["--http1.1"]),
                             (front.rest_address, ["--http2-prior-knowledge"])):
        # A body read from stdin has no length: over HTTP/2 it streams without one, and
        # Envoy mirrors it to the HTTP/1.1 recorder chunked.
        done = subprocess.run(
            ["curl", "-sS", *options, "-w", "\n%{http_version} %{http_code}", "-X", "POST",
             "-T", "-", f"http://{address}/v1/models/m:predict"],
            input=body, capture_output=True, text=True, timeout=30, check=True)
        content, _, versions = done.stdout.rpartition("\n")
        answers.append((content, versions.split()[1]))
        assert versions.split()[0] == ("2" if "http2" in options[0] else "1.1")
        assert ("transfer-encoding", "chunked") in front.rest.requests()[-1].headers
    assert answers[0] == answers[1] and answers[1][1] == "200"
    front.settle()
    counts = dict(front.rest_store.shape_set_counts("m", "serving_default"))
    assert counts.get(ShapeSet.of({"x": TensorSpec("DT_FLOAT", (13, 4))})) == 1


def test_http10_clients_get_the_same_answers(front: RestFront) -> None:
    body = json.dumps({"instances": ROWS}).encode()
    request = (b"POST /v1/models/m:predict HTTP/1.0\r\ncontent-length: %d\r\n\r\n"
               % len(body) + body)
    answers = []
    for address in (front.rest.address, front.rest_address):
        parsed = Address.parse(address, "address")
        with socket.create_connection((parsed.host, parsed.port), timeout=10) as connection:
            connection.sendall(request)
            answer = b"".join(iter(lambda: connection.recv(65536), b""))  # until it closes
        head, _, content = answer.partition(b"\r\n\r\n")
        answers.append((head.split(b" ")[1], content))
    assert answers[0] == answers[1] and answers[1][0] == b"200"


def test_paths_clients_may_not_call_are_refused_at_envoy(front: RestFront) -> None:
    before = len(front.rest.requests())
    refused = [("POST", "/v1/models/m:reload"), ("POST", "/v1/models/m"),
               ("PUT", "/v1/models/m:predict"), ("DELETE", "/v1/models/m"),
               ("GET", "/v1/models/m:predict"), ("GET", "/monitoring/prometheus/metrics"),
               ("POST", "/v1/models/m/versions/x:predict"), ("GET", "/" + "y" * 3000)]
    for method, path in refused:
        status, headers, body = call(front.rest_address, method, path, {"instances": ROWS})
        assert status == 403, (method, path)
        assert ("content-type", "application/json") in headers
        error = json.loads(body)["error"]
        assert error.startswith(f"{method} {path[:200]} cannot be called through")
        assert len(error) < 600
    assert len(front.rest.requests()) == before, "a refused call reached TF Serving"


SIGNATURES = (("m", "serving_default"), ("m", "classify"), ("m", "regress"),
              ("typed", "serving_default"))


def _counts(store: ShapeStore) -> dict[tuple[str, str, ShapeSet], int]:
    return {(model, signature, shape_set): count for model, signature in SIGNATURES
            for shape_set, count in store.shape_set_counts(model, signature)}


def _added(before: dict[tuple[str, str, ShapeSet], int],
           after: dict[tuple[str, str, ShapeSet], int]) -> dict[tuple[str, str, ShapeSet], int]:
    return {key: count - before.get(key, 0) for key, count in after.items()
            if count != before.get(key, 0)}


def test_rest_shapes_match_what_grpc_records(front: RestFront) -> None:
    front.settle()
    base = stored(front.rest_store)
    rest_before, grpc_before_counts = _counts(front.rest_store), _counts(front.grpc_store)
    serialized = [example(row).SerializeToString() for row in ROWS]
    rest_calls = [
        ("m", {"instances": ROWS}),
        ("m/versions/1", {"inputs": {"x": ROWS[:2]}}),
        ("m", {"signature_name": "classify",
               "instances": [{"b64": base64.b64encode(s).decode()} for s in serialized]}),
        ("typed", {"inputs": {"a": [[1.5, 2.0], [0.0, 1.0]], "b": [3, 4]}}),
    ]
    for model, body in rest_calls:
        assert call(front.rest_address, "POST", f"/v1/models/{model}:predict", body)[0] == 200
    for verb in ("classify", "regress"):
        answer = call(front.rest_address, "POST", f"/v1/models/m:{verb}",
                      {"signature_name": verb, "examples": [{"x": row} for row in ROWS[:2]]})
        assert answer[0] == 200
    front.settle()
    assert stored(front.rest_store) == base + 6

    grpc_before = stored(front.grpc_store)
    typed = predict_pb2.PredictRequest()
    typed.model_spec.name = "typed"
    typed.inputs["a"].CopyFrom(tf.make_tensor_proto(np.array([[1.5, 2], [0, 1]], np.float64)))
    typed.inputs["b"].CopyFrom(tf.make_tensor_proto(np.array([3, 4], np.int64)))
    strings = predict_pb2.PredictRequest()
    strings.model_spec.name, strings.model_spec.signature_name = "m", "classify"
    strings.inputs["inputs"].CopyFrom(tf.make_tensor_proto(serialized, tf.string))
    with grpc.insecure_channel(str(front.envoy.settings.listen)) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for request in (predict_request("m", 3), predict_request("m", 2, version=1), strings,
                        typed):
            stub.Predict(request, timeout=10)
        for verb, message in (("classify", classification_pb2.ClassificationRequest),
                              ("regress", regression_pb2.RegressionRequest)):
            grpc_request = message()
            grpc_request.model_spec.name, grpc_request.model_spec.signature_name = "m", verb
            grpc_request.input.example_list.examples.extend([example(row) for row in ROWS[:2]])
            getattr(stub, verb.capitalize())(grpc_request, timeout=10)
    front.settle()
    assert stored(front.grpc_store) == grpc_before + 6
    rest_added = _added(rest_before, _counts(front.rest_store))
    assert rest_added == _added(grpc_before_counts, _counts(front.grpc_store))
    assert len(rest_added) == 6
    typed_set = ShapeSet.of({"a": TensorSpec("DT_DOUBLE", (2, 2)),
                             "b": TensorSpec("DT_INT64", (2,))})
    assert rest_added[("typed", "serving_default", typed_set)] == 1


def test_rest_samples_replay_over_grpc(front: RestFront) -> None:
    """A sampled REST call is the gRPC request TF Serving builds from it: replayed, it
    gives the REST answer."""
    front.settle()
    before = len(front.rest_store.samples("m"))
    body = {"instances": ROWS, "signature_name": "serving_default"}
    status, _, answer = call(front.rest_address, "POST", "/v1/models/m/labels/stable:predict",
                             body)
    classify = {"signature_name": "classify", "context": {"x": ROWS[0]}, "examples": [{}, {}]}
    status_classify, _, classified = call(front.rest_address, "POST", "/v1/models/m:classify",
                                          classify)
    assert status == status_classify == 200
    front.settle()
    samples = front.rest_store.samples("m")[before:]
    assert [sample.method for sample in samples] == ["Predict", "Classify"]
    with grpc.insecure_channel(front.standin.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        predicted = stub.Predict(samples[0].request(), timeout=10)
        scores = stub.Classify(samples[1].request(), timeout=10)
    replayed = tf.make_ndarray(predicted.outputs["y"])
    assert samples[0].request().model_spec.version_label == "stable"  # type: ignore[attr-defined]
    assert predicted.model_spec.version.value == 1
    np.testing.assert_allclose(replayed, json.loads(answer)["predictions"], rtol=1e-6)
    assert [[[c.label, pytest.approx(c.score)] for c in row.classes]
            for row in scores.result.classifications] == json.loads(classified)["result"]


def test_gzip_bodies_are_answered_and_recorded(front: RestFront) -> None:
    body = gzip.compress(json.dumps({"instances": [[0.5] * 4] * 11}).encode())
    answers = []
    for address in (front.rest.address, front.rest_address):
        parsed = Address.parse(address, "address")
        connection = http.client.HTTPConnection(parsed.host, parsed.port, timeout=10)
        connection.request("POST", "/v1/models/m:predict", body=body,
                           headers={"content-encoding": "gzip"})
        answer = connection.getresponse()
        answers.append((answer.status, answer.read()))
        connection.close()
    assert answers[0] == answers[1] and answers[1][0] == 200
    front.settle()
    counts = dict(front.rest_store.shape_set_counts("m", "serving_default"))
    assert counts.get(ShapeSet.of({"x": TensorSpec("DT_FLOAT", (11, 4))})) == 1


def test_unparsable_bodies_are_counted_and_recording_goes_on(front: RestFront) -> None:
    front.settle()
    before = front.rest_recorder.stats.unparsable_requests
    for raw in (b"{not json", b"[1, 2]", json.dumps({"instances": [[1.0] * 4, [1.0]]}).encode()):
        assert call(front.rest_address, "POST", "/v1/models/m:predict", raw=raw)[0] == 400
    recorded = stored(front.rest_store)
    assert call(front.rest_address, "POST", "/v1/models/m:predict", {"instances": ROWS})[0] == 200
    front.settle()
    assert stored(front.rest_store) == recorded + 1
    assert front.rest_recorder.stats.unparsable_requests == before + 3


def test_the_rest_share_has_its_own_runtime_key(front: RestFront) -> None:
    admin = f"http://{front.envoy.settings.admin}"
    front.settle()
    rest_before, grpc_before = stored(front.rest_store), stored(front.grpc_store)
    _runtime(admin, 0)
    try:
        for _ in range(10):
            assert call(front.rest_address, "POST", "/v1/models/m:predict",
                        {"instances": ROWS})[0] == 200
        with grpc.insecure_channel(str(front.envoy.settings.listen)) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for _ in range(10):
                stub.Predict(predict_request("m"), timeout=10)
        front.settle()
        assert stored(front.rest_store) == rest_before, "no REST call mirrored at a share of 0"
        assert stored(front.grpc_store) == grpc_before + 10, "gRPC keeps its own share"
    finally:
        _runtime(admin, 100)


def _runtime(admin: str, percent: int) -> None:
    query = urllib.parse.urlencode({REST_MIRROR_RUNTIME_KEY: percent})
    parsed = Address.parse(admin.removeprefix("http://"), "admin")
    connection = http.client.HTTPConnection(parsed.host, parsed.port, timeout=5)
    connection.request("POST", f"/runtime_modify?{query}")
    assert connection.getresponse().status == 200
    connection.close()


def test_a_dead_rest_recorder_leaves_clients_unaffected(
        stand_ins: tuple[StandinHandle, RestStandin], tmp_path: Path) -> None:
    standin, rest = stand_ins
    settings = rest_settings(standin.address, rest.address, free_port(), free_port())
    envoy = EnvoyProcess(settings, EnvoyBinary.locate(), tmp_path)
    envoy.start()
    try:
        expected = call(rest.address, "POST", "/v1/models/m:predict", {"instances": ROWS})
        started = time.perf_counter()
        for _ in range(20):
            assert call(str(settings.rest_listen), "POST", "/v1/models/m:predict",
                        {"instances": ROWS}) == expected
        assert time.perf_counter() - started < 10
    finally:
        envoy.stop()


def test_tf_serving_down_is_a_json_503_at_once(stand_ins: tuple[StandinHandle, RestStandin],
                                                tmp_path: Path) -> None:
    standin, _ = stand_ins
    settings = rest_settings(standin.address, f"127.0.0.1:{free_port()}", free_port(),
                             free_port())
    envoy = EnvoyProcess(settings, EnvoyBinary.locate(), tmp_path)
    envoy.start()
    try:
        started = time.perf_counter()
        status, headers, body = call(str(settings.rest_listen), "POST", "/v1/models/m:predict",
                                     {"instances": ROWS})
        assert time.perf_counter() - started < 5
        assert status == 503 and ("content-type", "application/json") in headers
        assert "upstream connect error" in json.loads(body)["error"]
    finally:
        envoy.stop()


def test_invalid_rest_settings_are_refused_before_envoy_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rest_recorder.*rest_listen, rest_upstream and"):
        envoy_settings("127.0.0.1:1", 2, rest_listen=Address("127.0.0.1", 3),
                       rest_upstream=Address("127.0.0.1", 4))
    # Envoy listens on IP addresses only: a host name is refused by Envoy's own check.
    settings = rest_settings("127.0.0.1:1", "127.0.0.1:2", free_port(), free_port())
    bad = dataclasses.replace(settings, rest_listen=Address("rest.example", free_port()))
    envoy = EnvoyProcess(bad, EnvoyBinary.locate(), tmp_path)
    with pytest.raises(EnvoyConfigError, match="Envoy refused"):
        envoy.start()
    assert envoy.pid is None
