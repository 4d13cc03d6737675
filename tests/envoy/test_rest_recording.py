"""The REST recorder's parts on their own: the JSON read as TF Serving reads it (typed by
real SavedModels, or by the documented fallback), and the HTTP server over real sockets
with a real shape store."""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import predict_pb2, regression_pb2

from sidecar.config import Address
from sidecar.recorder.errors import UnparsableRequestError
from sidecar.recorder.rest_recorder import serve_rest_recorder
from sidecar.recorder.rest_shapes import observations_from_rest
from sidecar.recorder.settings import RecorderSettings
from sidecar.recorder.signature_dtypes import SignatureDtypes, read_signatures
from sidecar.shapes import (
    Refusal,
    ShapeObservation,
    ShapeSet,
    ShapeStore,
    ShapeStoreSettings,
    TensorSpec,
)
from tests.recorder.conftest import LoopThread, post_rest
from tests.support.standin_models import save_affine_model

UNKNOWN = SignatureDtypes(None)


def _shapes(path: str, body: object, signatures: SignatureDtypes = UNKNOWN) -> ShapeSet:
    (observation,) = observations_from_rest(path, json.dumps(body).encode(), 0.0, False,
                                            signatures)
    return observation.shape_set


def _save_scaled(version_dir: Path, dtype: tf.DType) -> None:
    module = tf.Module()
    module.f = tf.function(lambda v: {"out": v * 2},
                           input_signature=[tf.TensorSpec([None, 3], dtype, name="v")])
    tf.saved_model.save(module, str(version_dir), signatures={"serving_default": module.f})


def test_unknown_signatures_are_typed_as_tensorflow_types_the_values() -> None:
    b64 = {"b64": base64.b64encode(b"\x00\xff").decode()}
    assert _shapes("/v1/models/ghost:predict", {"instances": [
        {"i": [1, 2], "f": [1, 2.5], "b": True, "s": "text", "raw": b64, "e": []},
        {"i": [3, 4], "f": [0.0, 1], "b": False, "s": "more", "raw": b64, "e": []},
    ]}) == ShapeSet.of({
        "i": TensorSpec("DT_INT32", (2, 2)), "f": TensorSpec("DT_FLOAT", (2, 2)),
        "b": TensorSpec("DT_BOOL", (2,)), "s": TensorSpec("DT_STRING", (2,)),
        "raw": TensorSpec("DT_STRING", (2,)), "e": TensorSpec("DT_FLOAT", (2, 0)),
    })
    assert _shapes("/v1/models/ghost/labels/canary:predict",
                   {"inputs": {"scalar": 1.5, "grid": [[[1], [2]]]}}) == ShapeSet.of({
                       "scalar": TensorSpec("DT_FLOAT", ()),
                       "grid": TensorSpec("DT_INT32", (1, 2, 1))})


def _nested(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("body, reason", [
    ({"instances": [[1.0, 2.0]]}, "unnamed input"),
    ({"inputs": [1.0]}, "unnamed input"),
    ({"instances": [{"x": [1, "a"]}]}, "mixes JSON value kinds"),
    ({"instances": [{"x": 1}, {"y": 1}]}, "same inputs"),
    ({"instances": [{"x": [1, 2]}, {"x": [1]}]}, "differ in shape"),
    ({"instances": []}, "non-empty list"),
    ({"instances": [{"x": 1}], "inputs": {"x": 1}}, "exactly one"),
    ({"signature_name": 3, "inputs": {"x": 1}}, "signature_name"),
    ([1, 2], "not a JSON object"),
    ({"instances": [{"x": [[1, 2], [3]]}]}, r"ragged \(the value at byte 30 is of shape "
                                            r"\(1,\), the list's first of shape \(2,\)\)"),
    ({"inputs": {"x": [1, [2]]}}, "ragged"),
    ({"inputs": {"x": _nested(63)}}, r"nested deeper than 64 levels \(at byte 79\)"),
    ({"inputs": {f"x{n}": 1 for n in range(1025)}}, "more than 1024 inputs"),
    ({"instances": [{"\ud800": 1}]}, r"not JSON \(unexpected .*ud800.* at byte 16\)"),
])
def test_bodies_tf_serving_cannot_read_are_unparsable(body: object, reason: str) -> None:
    for sample in (True, False):
        with pytest.raises(UnparsableRequestError, match=reason):
            observations_from_rest("/v1/models/ghost:predict", json.dumps(body).encode(), 0.0,
                                   sample, UNKNOWN)
    with pytest.raises(UnparsableRequestError, match="not JSON"):
        observations_from_rest("/v1/models/ghost:predict", b"\xff{", 0.0, False, UNKNOWN)
    with pytest.raises(UnparsableRequestError, match="not a REST inference path"):
        observations_from_rest("/v1/models/ghost", b"{}", 0.0, False, UNKNOWN)


def test_signatures_type_the_json_and_follow_new_versions(tmp_path: Path) -> None:
    _save_scaled(tmp_path / "scaled" / "1", tf.float64)
    signatures = SignatureDtypes(tmp_path)
    body = {"instances": [[1, 2, 3]]}
    assert _shapes("/v1/models/scaled:predict", body, signatures) == ShapeSet.of(
        {"v": TensorSpec("DT_DOUBLE", (1, 3))})
    _save_scaled(tmp_path / "scaled" / "2", tf.int64)
    assert _shapes("/v1/models/scaled:predict", body, signatures) == ShapeSet.of(
        {"v": TensorSpec("DT_INT64", (1, 3))}), "the newest version is the one served"
    assert _shapes("/v1/models/scaled/versions/1:predict", body, signatures) == ShapeSet.of(
        {"v": TensorSpec("DT_DOUBLE", (1, 3))})
    # A name leading out of the serving base is never looked up there.
    assert SignatureDtypes(tmp_path / "scaled").input_dtypes("..", 1, "serving_default") is None
    for sample in (True, False):
        with pytest.raises(UnparsableRequestError, match=r"DT_DOUBLE\) holds a string"):
            observations_from_rest("/v1/models/scaled/versions/1:predict",
                                   json.dumps({"instances": [["a", "b", "c"]]}).encode(), 0.0,
                                   sample, signatures)


def test_only_the_signatures_are_read_of_a_saved_model(tmp_path: Path) -> None:
    version = save_affine_model(tmp_path / "m" / "1")
    path = version / "saved_model.pb"
    full = saved_model_pb2.SavedModel.FromString(path.read_bytes()).meta_graphs[0]
    assert read_signatures(path) == {
        key: {name: types_pb2.DataType.Name(info.dtype) for name, info in sig.inputs.items()}
        for key, sig in full.signature_def.items()}
    path.write_bytes(path.read_bytes()[:-7])  # truncated
    assert SignatureDtypes(tmp_path).input_dtypes("m", 1, "serving_default") is None


def test_samples_are_the_requests_tf_serving_builds(tmp_path: Path) -> None:
    _save_scaled(tmp_path / "scaled" / "1", tf.float64)
    (predict,) = observations_from_rest(
        "/v1/models/scaled/labels/stable:predict",
        json.dumps({"signature_name": "serving_default", "inputs": [[1, 2.5, 3]]}).encode(),
        5.0, True, SignatureDtypes(tmp_path))
    assert predict.version_label == "stable" and predict.sample is not None
    request = predict_pb2.PredictRequest.FromString(predict.sample)
    assert request.model_spec.version_label == "stable"
    assert request.model_spec.signature_name == "serving_default"
    assert list(request.inputs["v"].double_val) == [1.0, 2.5, 3.0]
    assert [d.size for d in request.inputs["v"].tensor_shape.dim] == [1, 3]
    (regress,) = observations_from_rest(
        "/v1/models/scaled/versions/4:regress",
        json.dumps({"context": {"c": "shared"},
                    "examples": [{"n": 1, "f": [0.5, 1.5], "b": True}, {"n": 2}]}).encode(),
        5.0, True, UNKNOWN)
    assert regress.shape_set == ShapeSet.of({"inputs": TensorSpec("DT_STRING", (2,))})
    assert regress.signature == "serving_default" and regress.version == 4
    assert regress.sample is not None
    examples = regression_pb2.RegressionRequest.FromString(regress.sample).input
    with_context = examples.example_list_with_context
    assert with_context.context.features.feature["c"].bytes_list.value == [b"shared"]
    first = with_context.examples[0].features.feature
    assert list(first["n"].int64_list.value) == [1] and list(first["b"].int64_list.value) == [1]
    with pytest.raises(UnparsableRequestError, match="mixes value kinds"):
        observations_from_rest("/v1/models/m:regress",
                               json.dumps({"examples": [{"f": [0.5, 1, "x"]}]}).encode(),
                               0.0, True, UNKNOWN)


class _HeldStore:
    """The real store behind a gate, as a slow disk holds the recorder's writes."""

    def __init__(self, store: ShapeStore) -> None:
        self.store = store
        self.open = threading.Event()

    def record(self, observations: Sequence[ShapeObservation]) -> Sequence[Refusal | None]:
        """Wait for the gate, then store."""
        assert self.open.wait(10)
        return self.store.record(observations)


def test_the_recorder_answers_at_once_and_drops_beyond_its_queue(tmp_path: Path) -> None:
    loop = LoopThread()
    body = json.dumps({"instances": [{"x": [1.0, 2.0]}]}).encode()
    settings = RecorderSettings(listen=Address("127.0.0.1", 0), queue_size=2,
                                max_message_bytes=4096, record_interval_seconds=0.0)
    try:
        with ShapeStore(tmp_path / "state", ShapeStoreSettings(), time.time) as store:
            held = _HeldStore(store)
            server = loop.run(serve_rest_recorder(settings, held, UNKNOWN))
            answers = [post_rest(server.port, "/v1/models/q:predict", body) for _ in range(6)]
            assert answers == [(200, b"{}")] * 6, "answered while recording is held"
            held.open.set()
            assert post_rest(server.port, "/v1/models/q:predict", b"x" * 5000) == (413, b"")
            assert post_rest(server.port, "/v1/models/q:predict", body,
                             chunked=True) == (200, b"{}")
            assert loop.run(server.wait_recorded(10))
            for gzipped in (gzip.compress(body), gzip.compress(b" " * 5000 + body)):
                assert post_rest(server.port, "/v1/models/q:predict", gzipped) == (200, b"{}")
                assert loop.run(server.wait_recorded(10))
            recorded = sum(count for _, count in store.shape_set_counts("q", "serving_default"))
            assert server.stats.dropped_records >= 2, "at most 2 queued and 2 being recorded"
            assert recorded + server.stats.dropped_records == 8
            assert server.stats.unparsable_requests == 1, "inflated past the body limit"
            loop.run(server.stop(1))
    finally:
        loop.close()
