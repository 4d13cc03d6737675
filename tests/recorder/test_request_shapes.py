"""Parsing forwarded request bytes into shape observations (no network)."""

from __future__ import annotations

import pytest
from tensorflow_serving.apis import inference_pb2

from sidecar.recorder.errors import UnparsableRequestError
from sidecar.recorder.request_shapes import observations_from_request
from sidecar.shapes import ShapeSet, TensorSpec
from tests.support.standin_models import example, predict_request


def test_predict_request_shapes_and_model_spec() -> None:
    request = predict_request("m", batch=3, version=7)
    (seen,) = observations_from_request("Predict", request.SerializeToString(), 12.5, False)
    assert (seen.model, seen.signature, seen.version, seen.version_label) == (
        "m",
        "serving_default",
        7,
        None,
    )
    assert seen.shape_set == ShapeSet.of({"x": TensorSpec("DT_FLOAT", (3, 4))})
    assert (seen.received_at, seen.sample) == (12.5, None)


def test_version_label_and_sample() -> None:
    request = predict_request("m", signature="other")
    request.model_spec.version_label = "stable"
    raw = request.SerializeToString()
    (seen,) = observations_from_request("Predict", raw, 0.0, True)
    assert (seen.signature, seen.version, seen.version_label) == ("other", None, "stable")
    assert seen.sample == raw


def test_multi_inference_gives_one_observation_per_task() -> None:
    request = inference_pb2.MultiInferenceRequest()
    request.input.example_list_with_context.examples.extend([example([1, 2, 3, 4])] * 2)
    for signature in ("classify", "regress"):
        task = request.tasks.add()
        task.model_spec.name = "m"
        task.model_spec.signature_name = signature
    raw = request.SerializeToString()
    first, second = observations_from_request("MultiInference", raw, 0.0, True)
    assert [first.signature, second.signature] == ["classify", "regress"]
    assert first.shape_set == ShapeSet.of({"inputs": TensorSpec("DT_STRING", (2,))})
    assert (first.sample, second.sample) == (raw, None)


def test_garbage_is_unparsable() -> None:
    with pytest.raises(UnparsableRequestError, match="Predict request of 4 bytes"):
        observations_from_request("Predict", b"\xff\xff\xff\xff", 0.0, False)
