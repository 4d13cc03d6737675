"""Turn a forwarded request's bytes into shape observations (runs off the hot path)."""

from __future__ import annotations

from google.protobuf.message import DecodeError
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from sidecar.recorder.errors import UnparsableRequestError
from sidecar.shapes import ShapeObservation, ShapeSet, TensorSpec
from sidecar.shapes.requests import predict_shape_set, signature_called

EXAMPLES_INPUT = "inputs"
"""The input name of classify and regress signatures (TF Serving's convention)."""


def observations_from_request(
    method: str, request: bytes, received_at: float, sample: bool
) -> list[ShapeObservation]:
    """Observations for one call of PredictionService `method` (one per MultiInference task).

    With `sample`, the first observation carries the whole request bytes.
    Raises `UnparsableRequestError` when the bytes are not a valid request of `method`.
    """
    try:
        observations = _parse(method, request, received_at)
    except (DecodeError, ValueError) as error:
        raise UnparsableRequestError(
            f"{method} request of {len(request)} bytes: {error}"
        ) from error
    if sample and observations:
        first = observations[0]
        observations[0] = ShapeObservation(
            model=first.model,
            signature=first.signature,
            shape_set=first.shape_set,
            received_at=first.received_at,
            method=first.method,
            version=first.version,
            version_label=first.version_label,
            sample=request,
        )
    return observations


def _parse(method: str, request: bytes, received_at: float) -> list[ShapeObservation]:
    if method == "Predict":
        predict = predict_pb2.PredictRequest.FromString(request)
        return [_observation(method, predict.model_spec, predict_shape_set(predict), received_at)]
    if method in ("Classify", "Regress"):
        message_type = (
            classification_pb2.ClassificationRequest
            if method == "Classify"
            else regression_pb2.RegressionRequest
        )
        parsed = message_type.FromString(request)
        shape_set = _examples_shape_set(parsed.input)
        return [_observation(method, parsed.model_spec, shape_set, received_at)]
    if method == "MultiInference":
        multi = inference_pb2.MultiInferenceRequest.FromString(request)
        shape_set = _examples_shape_set(multi.input)
        return [
            _observation(method, task.model_spec, shape_set, received_at) for task in multi.tasks
        ]
    raise ValueError(f"method {method!r} carries no shapes")


def _observation(
    method: str, spec: model_pb2.ModelSpec, shape_set: ShapeSet, received_at: float
) -> ShapeObservation:
    which = spec.WhichOneof("version_choice")
    return ShapeObservation(
        model=spec.name,
        signature=signature_called(spec),
        shape_set=shape_set,
        received_at=received_at,
        method=method,
        version=spec.version.value if which == "version" else None,
        version_label=spec.version_label if which == "version_label" else None,
    )


def _examples_shape_set(examples_input: input_pb2.Input) -> ShapeSet:
    kind = examples_input.WhichOneof("kind")
    if kind == "example_list":
        count = len(examples_input.example_list.examples)
    elif kind == "example_list_with_context":
        count = len(examples_input.example_list_with_context.examples)
    else:
        count = 0
    return ShapeSet.of({EXAMPLES_INPUT: TensorSpec("DT_STRING", (count,))})
