"""Turn a mirrored REST call (path and JSON body) into shape observations, as the gRPC
path does for the same call (runs off the hot path, on the recorder's worker thread).

The JSON is read the way TF Serving reads it (``json_tensor.cc``):

- ``:predict``: row format (``instances``: a list, one item per batch row, each a value
  or an object of named inputs) or columnar (``inputs``: one tensor, or an object of named
  tensors). A tensor's shape is its nesting (the first element's at each level), a row
  batch adds the row count in front. ``{"b64": ...}`` is one string value.
- ``:classify`` and ``:regress``: ``examples`` (and an optional ``context``) give
  ``inputs: DT_STRING (n,)``, n examples, as gRPC's serialized ``tf.Example`` list does.

TF Serving refuses ragged tensors; rows of different shapes are caught on every call, a
ragged tensor inside a row only when the call is sampled (the whole tensor is read then).

Dtypes are the served signature's (:class:`~sidecar.tap.signature_dtypes.SignatureDtypes`),
as TF Serving types the call. When the model or signature is not known there, a tensor is
typed as TensorFlow types the same Python value (``tf.constant``): only booleans DT_BOOL,
only whole numbers DT_INT32, numbers with any fraction DT_FLOAT, strings and ``b64``
DT_STRING, an empty list DT_FLOAT; and a single unnamed input cannot be recorded (its name
is the signature's), nor can any call naming inputs the signature does not have.

A sample is the gRPC request TF Serving builds from the JSON (``PredictRequest`` with the
signature's dtypes, ``ClassificationRequest``, ``RegressionRequest``), so warmup replays it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.message import Message
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import classification_pb2, model_pb2, predict_pb2, regression_pb2

from sidecar.shapes import ShapeObservation, ShapeSet, TensorSpec
from sidecar.shapes.requests import DEFAULT_SIGNATURE
from sidecar.tap.errors import UnparsableRequestError
from sidecar.tap.request_shapes import EXAMPLES_INPUT
from sidecar.tap.rest_api import PredictionTarget, prediction_target
from sidecar.tap.signature_dtypes import SignatureDtypes

# dtype name -> (TensorProto field, accepts a JSON value, bounds for whole numbers).
_INT32: Final = (-(1 << 31), (1 << 31) - 1)
_VALUE_FIELDS: Final[dict[str, tuple[str, str, tuple[int, int] | None]]] = {
    "DT_FLOAT": ("float_val", "number", None),
    "DT_DOUBLE": ("double_val", "number", None),
    "DT_INT32": ("int_val", "int", _INT32),
    "DT_INT16": ("int_val", "int", _INT32),
    "DT_INT8": ("int_val", "int", _INT32),
    "DT_UINT8": ("int_val", "int", _INT32),
    "DT_INT64": ("int64_val", "int", (-(1 << 63), (1 << 63) - 1)),
    "DT_UINT32": ("uint32_val", "int", (0, (1 << 32) - 1)),
    "DT_UINT64": ("uint64_val", "int", (0, (1 << 64) - 1)),
    "DT_BOOL": ("bool_val", "bool", None),
    "DT_STRING": ("string_val", "string", None),
}
"""The dtypes TF Serving's JSON can carry (it answers UNIMPLEMENTED for any other)."""


@dataclass(frozen=True)
class _Tensor:
    """One input as the JSON gives it: its value (row format: the list of rows), shape
    and dtype name."""

    value: Any
    shape: tuple[int, ...]
    dtype: str


def observations_from_rest(path: str, body: bytes, received_at: float, sample: bool,
                           signatures: SignatureDtypes) -> list[ShapeObservation]:
    """The observation of one mirrored REST call; with ``sample`` it carries the equivalent
    serialized gRPC request. UnparsableRequestError when the call is not one TF Serving
    could read (its reason says why)."""
    target = prediction_target(path)
    if target is None:
        raise UnparsableRequestError(f"{path[:200]!r} is not a REST inference path")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise _unparsable(target, f"the body is not JSON ({error})") from error
    if not isinstance(document, dict):
        raise _unparsable(target, "the body is not a JSON object")
    signature_name = document.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise _unparsable(target, "signature_name is not a string")
    key = signature_name or DEFAULT_SIGNATURE
    request: Message | None = None
    if target.method == "Predict":
        dtypes = signatures.input_dtypes(target.model, target.version, key)
        tensors = _predict_tensors(target, document, dtypes)
        shape_set = ShapeSet.of({name: TensorSpec(t.dtype, t.shape)
                                 for name, t in tensors.items()})
        if sample:
            request = predict_pb2.PredictRequest()
            _fill_spec(request.model_spec, target, signature_name)
            for name, tensor in tensors.items():
                request.inputs[name].CopyFrom(_tensor_proto(target, name, tensor))
    else:
        examples, context = _examples(target, document)
        shape_set = ShapeSet.of({EXAMPLES_INPUT: TensorSpec("DT_STRING", (len(examples),))})
        if sample:
            request = _examples_request(target, signature_name, examples, context)
    return [ShapeObservation(
        model=target.model, signature=key, shape_set=shape_set, received_at=received_at,
        method=target.method, version=target.version, version_label=target.label,
        sample=request.SerializeToString() if request is not None else None,
    )]


def _unparsable(target: PredictionTarget, reason: str) -> UnparsableRequestError:
    return UnparsableRequestError(f"REST {target.method} of model {target.model!r}: {reason}")


def _predict_tensors(target: PredictionTarget, document: dict[str, Any],
                     dtypes: dict[str, str] | None) -> dict[str, _Tensor]:
    if ("instances" in document) == ("inputs" in document):
        raise _unparsable(target, "the body needs exactly one of 'instances' or 'inputs'")
    if "instances" in document:
        return _row_tensors(target, document["instances"], dtypes)
    columns = document["inputs"]
    if not isinstance(columns, dict) or _is_b64(columns):
        columns = {_only_input(target, dtypes): columns}
    elif dtypes is not None:
        missing = sorted(set(dtypes) - set(columns))
        if missing:
            raise _unparsable(target, f"'inputs' lacks the signature's inputs {missing}")
        columns = {name: columns[name] for name in dtypes}  # TF Serving ignores the others
    return {name: _Tensor(value, _dense_shape(value), _dtype(target, dtypes, name, value))
            for name, value in columns.items()}


def _row_tensors(target: PredictionTarget, instances: Any, dtypes: dict[str, str] | None
                 ) -> dict[str, _Tensor]:
    if not isinstance(instances, list) or not instances:
        raise _unparsable(target, "'instances' is not a non-empty list")
    named = isinstance(instances[0], dict) and not _is_b64(instances[0])
    if named:
        names = sorted(instances[0])
        if dtypes is not None and set(names) != set(dtypes):
            raise _unparsable(target, f"instances name {names}, the signature {sorted(dtypes)}")
        if any(not isinstance(row, dict) or sorted(row) != names for row in instances):
            raise _unparsable(target, "the instances do not all name the same inputs")
        rows = {name: [row[name] for row in instances] for name in names}
    else:
        rows = {_only_input(target, dtypes): instances}
    tensors = {}
    for name, values in rows.items():
        shape = _dense_shape(values[0])
        if any(_dense_shape(value) != shape for value in values):
            raise _unparsable(target, f"the instances of input {name!r} differ in shape")
        tensors[name] = _Tensor(values, (len(values), *shape),
                                _dtype(target, dtypes, name, values))
    return tensors


def _only_input(target: PredictionTarget, dtypes: dict[str, str] | None) -> str:
    if dtypes is None:
        raise _unparsable(target, "an unnamed input needs the signature's input name, and "
                          "the signature is not known to the serving base")
    if len(dtypes) != 1:
        raise _unparsable(target, f"an unnamed input, but the signature has {len(dtypes)}")
    return next(iter(dtypes))


def _dtype(target: PredictionTarget, dtypes: dict[str, str] | None, name: str,
           value: Any) -> str:
    if dtypes is not None:
        if dtypes[name] not in _VALUE_FIELDS:
            raise _unparsable(target, f"input {name!r} is {dtypes[name]}, which TF Serving's "
                              "JSON cannot carry")
        return dtypes[name]
    kinds = {_kind(leaf) for leaf in _leaves(value)}
    if kinds == {"bool"}:
        return "DT_BOOL"
    if kinds == {"string"}:
        return "DT_STRING"
    if kinds <= {"int", "number"}:
        return "DT_INT32" if kinds == {"int"} else "DT_FLOAT"
    raise _unparsable(target, f"input {name!r} mixes JSON value kinds {sorted(kinds)}")


def _dense_shape(value: Any) -> tuple[int, ...]:
    # TF Serving's GetDenseTensorShape: the nesting of the first element at each level.
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _kind(leaf: Any) -> str:
    if isinstance(leaf, bool):
        return "bool"
    if isinstance(leaf, int):
        return "int"
    if isinstance(leaf, float):
        return "number"
    if isinstance(leaf, str) or _is_b64(leaf):
        return "string"
    return type(leaf).__name__


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _bytes(target: PredictionTarget, value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError) as error:
        raise _unparsable(target, "a b64 value is not base64") from error


def _tensor_proto(target: PredictionTarget, name: str, tensor: _Tensor
                  ) -> tensor_pb2.TensorProto:
    field, accepted, bounds = _VALUE_FIELDS[tensor.dtype]
    values = []
    for leaf in _flat(target, name, tensor.value, tensor.shape, 0):
        kind = _kind(leaf)
        if not (kind == accepted or (accepted == "number" and kind == "int")):
            raise _unparsable(target, f"input {name!r} ({tensor.dtype}) holds a {kind} value")
        if bounds is not None and not bounds[0] <= leaf <= bounds[1]:
            raise _unparsable(target, f"input {name!r} ({tensor.dtype}) holds {leaf}")
        values.append(_bytes(target, leaf) if accepted == "string" else leaf)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(tensor.dtype))
    for size in tensor.shape:
        proto.tensor_shape.dim.add().size = size
    getattr(proto, field).extend(values)
    return proto


def _flat(target: PredictionTarget, name: str, value: Any, shape: tuple[int, ...],
          level: int) -> Iterator[Any]:
    # Every value must sit at the tensor's rank, every list be as long as the shape says:
    # TF Serving refuses the call otherwise (FillTensorProto).
    if level == len(shape):
        if isinstance(value, list):
            raise _unparsable(target, f"input {name!r} is nested deeper than its shape")
        yield value
        return
    if not isinstance(value, list) or len(value) != shape[level]:
        raise _unparsable(target, f"input {name!r} is ragged (not of shape {shape})")
    for item in value:
        yield from _flat(target, name, item, shape, level + 1)


def _examples(target: PredictionTarget, document: dict[str, Any]
              ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    examples = document.get("examples")
    if not isinstance(examples, list) or not examples:
        raise _unparsable(target, "'examples' is not a non-empty list")
    if not all(isinstance(example, dict) for example in examples):
        raise _unparsable(target, "an example is not a JSON object")
    context = document.get("context")
    if context is not None and not isinstance(context, dict):
        raise _unparsable(target, "'context' is not a JSON object")
    return examples, context


def _examples_request(target: PredictionTarget, signature_name: str,
                      examples: list[dict[str, Any]], context: dict[str, Any] | None
                      ) -> Message:
    request: classification_pb2.ClassificationRequest | regression_pb2.RegressionRequest = (
        classification_pb2.ClassificationRequest() if target.method == "Classify"
        else regression_pb2.RegressionRequest())
    _fill_spec(request.model_spec, target, signature_name)
    if context is None:
        listed = request.input.example_list.examples
    else:
        request.input.example_list_with_context.context.CopyFrom(_example(target, context))
        listed = request.input.example_list_with_context.examples
    for example in examples:
        listed.add().CopyFrom(_example(target, example))
    return request


def _example(target: PredictionTarget, features: dict[str, Any]) -> example_pb2.Example:
    # TF Serving's MakeExampleFromJsonObject: whole numbers and booleans are int64, numbers
    # with a fraction float, strings and b64 bytes; one kind per feature.
    example = example_pb2.Example()
    for name, content in features.items():
        feature = example.features.feature[name]
        for value in content if isinstance(content, list) else [content]:
            kind = _kind(value)
            if kind in ("bool", "int"):
                list_name, value = "int64_list", int(value)
                if not -(1 << 63) <= value < (1 << 63):
                    raise _unparsable(target, f"feature {name!r} holds {value}")
            elif kind == "number":
                list_name = "float_list"
            elif kind == "string":
                list_name, value = "bytes_list", _bytes(target, value)
            else:
                raise _unparsable(target, f"feature {name!r} holds a {kind}")
            if feature.WhichOneof("kind") not in (None, list_name):
                raise _unparsable(target, f"feature {name!r} mixes value kinds")
            getattr(feature, list_name).value.append(value)
    return example


def _fill_spec(spec: model_pb2.ModelSpec, target: PredictionTarget, signature_name: str
               ) -> None:
    spec.name = target.model
    if target.version is not None:
        spec.version.value = target.version
    if target.label is not None:
        spec.version_label = target.label
    if signature_name:
        spec.signature_name = signature_name
