"""The shapes a TF Serving request carries: its signature and its inputs' shape set.

Shared by what reads requests: the recorder (calls mirrored from traffic) and the
serving-base reader (the requests of a published version's warmup file). Loads
TensorFlow's protos, so the rest of :mod:`sidecar.shapes` does not import it.
"""

from __future__ import annotations

from typing import Final

from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2

from sidecar.shapes.shape_set import ShapeSet, TensorSpec

DEFAULT_SIGNATURE: Final = "serving_default"
"""The signature TF Serving uses when a request names none."""


def signature_called(spec: model_pb2.ModelSpec) -> str:
    """The signature a request's model spec calls (TF Serving's default if it names none)."""
    return spec.signature_name or DEFAULT_SIGNATURE


def tensor_spec(tensor: tensor_pb2.TensorProto) -> TensorSpec:
    """A ``TensorProto``'s dtype and shape (an unknown dtype number as ``DT_<number>``)."""
    dtype = tensor.dtype
    try:
        dtype_name = types_pb2.DataType.Name(dtype)
    except ValueError:
        dtype_name = f"DT_{dtype}"
    return TensorSpec(dtype_name, tuple(int(dim.size) for dim in tensor.tensor_shape.dim))


def predict_shape_set(request: predict_pb2.PredictRequest) -> ShapeSet:
    """The shape set of a ``PredictRequest``'s inputs."""
    return ShapeSet.of({name: tensor_spec(tensor) for name, tensor in request.inputs.items()})
