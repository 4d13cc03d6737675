"""Test-only helpers for end-to-end tests: free ports and a Predict call on the tests'
Keras MLP (input "x", 16 features)."""

from __future__ import annotations

import socket

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def predict_mlp(address: str, batch: int, model: str = "mlp") -> predict_pb2.PredictResponse:
    """Predict on `model` at `address` with a (batch, 16) float32 input named "x"."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((batch, 16), np.float32)))
    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(request, timeout=30)
