"""Sampled requests as the store keeps them, and their conversion to TF Serving warmup logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from sidecar.shapes.errors import ShapeStoreError

# PredictionService method name -> (request message type, PredictionLog field, log type).
_REQUEST_TYPES = {
    "Predict": (predict_pb2.PredictRequest, "predict_log", prediction_log_pb2.PredictLog),
    "Classify": (
        classification_pb2.ClassificationRequest,
        "classify_log",
        prediction_log_pb2.ClassifyLog,
    ),
    "Regress": (regression_pb2.RegressionRequest, "regress_log", prediction_log_pb2.RegressLog),
    "MultiInference": (
        inference_pb2.MultiInferenceRequest,
        "multi_inference_log",
        prediction_log_pb2.MultiInferenceLog,
    ),
}

SAMPLED_METHODS = frozenset(_REQUEST_TYPES)
"""PredictionService methods whose requests can be sampled and replayed as warmup."""


@dataclass(frozen=True)
class StoredSample:
    """One sampled request: where it went, when, and its serialized bytes."""

    model: str
    signature: str
    method: str
    received_at: float
    request_bytes: bytes = field(repr=False)

    def request(self) -> object:
        """The parsed request message (`PredictRequest`, `ClassificationRequest`, ...)."""
        message_type, _, _ = self._types()
        return message_type.FromString(self.request_bytes)

    def prediction_log(self) -> prediction_log_pb2.PredictionLog:
        """This request as a TF Serving warmup record."""
        _, log_field, log_type = self._types()
        log = prediction_log_pb2.PredictionLog()
        getattr(log, log_field).CopyFrom(log_type(request=self.request()))
        return log

    def _types(self) -> tuple[Any, str, Any]:
        try:
            return _REQUEST_TYPES[self.method]
        except KeyError:
            raise ShapeStoreError(
                f"sample of model {self.model!r} has method {self.method!r}; "
                f"only {sorted(_REQUEST_TYPES)} can be replayed"
            ) from None
