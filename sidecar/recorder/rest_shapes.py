"""Turn a mirrored REST call (path and JSON body) into shape observations, as the gRPC
path does for the same call (runs off the hot path, on the recorder's worker thread).

The JSON is read the way TF Serving reads it (``json_tensor.cc``):

- ``:predict``: row format (``instances``: a list, one item per batch row, each a value
  or an object of named inputs) or columnar (``inputs``: one tensor, or an object of named
  tensors). A tensor's shape is its nesting (the first element's at each level), a row
  batch adds the row count in front. ``{"b64": ...}`` is one string value.
- ``:classify`` and ``:regress``: ``examples`` (and an optional ``context``) give
  ``inputs: DT_STRING (n,)``, n examples, as gRPC's serialized ``tf.Example`` list does.

The body is read without building its values (:mod:`sidecar.recorder.json_reader`: shapes and
value kinds only, at most 64 levels deep, in memory near the body's size); only a sampled
call's values are built, and a sample is small (``sample_max_bytes``, once inflated). A
body TF Serving would refuse is refused, with the reason: ragged tensors, values of a
kind the input's dtype cannot hold, more than `MAX_INPUTS` inputs.

Dtypes are the served signature's (:class:`~sidecar.recorder.signature_dtypes.SignatureDtypes`),
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

from sidecar.recorder.errors import UnparsableRequestError
from sidecar.recorder.json_reader import JsonReader, TensorRead
from sidecar.recorder.request_shapes import EXAMPLES_INPUT
from sidecar.recorder.signature_dtypes import SignatureDtypes
from sidecar.shapes import ShapeObservation, ShapeSet, TensorSpec
from sidecar.shapes.requests import DEFAULT_SIGNATURE
from sidecar.tfserving.rest_api import PredictionTarget, prediction_target

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


MAX_INPUTS: Final = 1024
"""Most inputs one object of a body may name (a signature has a handful)."""


@dataclass(frozen=True)
class _Tensor:
    """One input as the body gives it: its shape, dtype name and where its values are
    (row format: one range per row)."""

    shape: tuple[int, ...]
    dtype: str
    spans: tuple[tuple[int, int], ...]
    rows: bool


@dataclass
class _Input:
    """One input of a body as read so far: its (row's) shape, value kinds and ranges."""

    shape: tuple[int, ...]
    kinds: set[str]
    spans: list[tuple[int, int]]

    @classmethod
    def of(cls, read: TensorRead) -> _Input:
        return cls(read.shape, set(read.kinds), [read.span])


@dataclass
class _Body:
    """What a REST body holds that TF Serving reads, values left in the body."""

    signature_name: str | None = ""
    """None when it is not a string."""
    rows: dict[str | None, _Input] | None = None
    """``instances``: per input name (None: the one unnamed input), over all rows."""
    row_count: int = 0
    columns: dict[str | None, _Input] | None = None
    """``inputs``: per input name (None: the one unnamed input)."""
    examples: TensorRead | None = None
    context: TensorRead | None = None


def observations_from_rest(path: str, body: bytes, received_at: float, sample: bool,
                           signatures: SignatureDtypes) -> list[ShapeObservation]:
    """The observation of one mirrored REST call; with ``sample`` it carries the equivalent
    serialized gRPC request. UnparsableRequestError when the call is not one TF Serving
    could read (its reason says why)."""
    target = prediction_target(path)
    if target is None:
        raise UnparsableRequestError(f"{path[:200]!r} is not a REST inference path")
    try:
        document = _read_body(target, JsonReader(body))
    except ValueError as error:
        raise _unparsable(target, f"the body is {error}") from None
    if document.signature_name is None:
        raise _unparsable(target, "signature_name is not a string")
    signature_name = document.signature_name
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
                request.inputs[name].CopyFrom(_tensor_proto(target, name, tensor, body))
    else:
        examples = _examples(target, document)
        shape_set = ShapeSet.of({EXAMPLES_INPUT: TensorSpec("DT_STRING", (examples,))})
        if sample:
            request = _examples_request(target, signature_name, document, body)
    return [ShapeObservation(
        model=target.model, signature=key, shape_set=shape_set, received_at=received_at,
        method=target.method, version=target.version, version_label=target.label,
        sample=request.SerializeToString() if request is not None else None,
    )]


def _unparsable(target: PredictionTarget, reason: str) -> UnparsableRequestError:
    return UnparsableRequestError(f"REST {target.method} of model {target.model!r}: {reason}")


def _read_body(target: PredictionTarget, reader: JsonReader) -> _Body:
    """The parts of the body ``target``'s method reads (the others are only read past)."""
    if reader.kind() != "object":
        raise ValueError("not a JSON object")
    document = _Body()
    for name in reader.members():
        if name == "signature_name":
            document.signature_name = reader.string()
        elif name == "instances" and target.method == "Predict":
            document.rows, document.row_count = _read_rows(target, reader)
        elif name == "inputs" and target.method == "Predict":
            columns = (reader.named_tensors(MAX_INPUTS) if reader.kind() == "object"
                       else reader.tensor())
            document.columns = ({None: _Input.of(columns)} if isinstance(columns, TensorRead)
                                else {name: _Input.of(read) for name, read in columns.items()})
        elif name == "examples" and target.method != "Predict":
            document.examples = reader.tensor()
        elif name == "context" and target.method != "Predict":
            document.context = reader.tensor()
        else:
            reader.skip()
    reader.end()
    return document


def _read_rows(target: PredictionTarget, reader: JsonReader
               ) -> tuple[dict[str | None, _Input], int]:
    """Each input of ``instances`` over its rows (which must agree), and the row count;
    only each row's range of values is kept."""
    if reader.kind() != "list":
        raise _unparsable(target, "'instances' is not a non-empty list")
    inputs: dict[str | None, _Input] = {}
    count = 0
    for index in reader.elements():
        count += 1
        row = (reader.named_tensors(MAX_INPUTS) if reader.kind() == "object"
               else reader.tensor())
        named = row if isinstance(row, dict) else {None: row}
        if index == 0:
            inputs = {name: _Input.of(read) for name, read in named.items()}
            continue
        if named.keys() != inputs.keys():
            raise _unparsable(target, "the instances do not all name the same inputs")
        for name, read in named.items():
            seen = inputs[name]
            if read.shape != seen.shape:
                raise _unparsable(target, f"the instances of input {name!r} differ in shape")
            seen.kinds |= read.kinds
            seen.spans.append(read.span)
    return inputs, count


def _predict_tensors(target: PredictionTarget, document: _Body,
                     dtypes: dict[str, str] | None) -> dict[str, _Tensor]:
    if (document.rows is None) == (document.columns is None):
        raise _unparsable(target, "the body needs exactly one of 'instances' or 'inputs'")
    rows = document.rows is not None
    inputs = document.rows if document.rows is not None else document.columns
    assert inputs is not None
    if rows and not document.row_count:
        raise _unparsable(target, "'instances' is not a non-empty list")
    if not inputs:
        raise _unparsable(target, "the body names no inputs")
    if None in inputs:
        inputs = {_only_input(target, dtypes): inputs[None]}
    elif dtypes is not None and rows:
        if set(inputs) != set(dtypes):
            raise _unparsable(target, f"instances name {sorted(inputs, key=str)}, the "
                              f"signature {sorted(dtypes)}")
    elif dtypes is not None:
        missing = sorted(set(dtypes) - set(inputs))
        if missing:
            raise _unparsable(target, f"'inputs' lacks the signature's inputs {missing}")
        inputs = {name: inputs[name] for name in dtypes}  # TF Serving ignores the others
    count = document.row_count
    return {str(name): _Tensor((count, *seen.shape) if rows else seen.shape,
                               _dtype(target, dtypes, str(name), seen.kinds),
                               tuple(seen.spans), rows)
            for name, seen in inputs.items()}


def _only_input(target: PredictionTarget, dtypes: dict[str, str] | None) -> str:
    if dtypes is None:
        raise _unparsable(target, "an unnamed input needs the signature's input name, and "
                          "the signature is not known to the serving base")
    if len(dtypes) != 1:
        raise _unparsable(target, f"an unnamed input, but the signature has {len(dtypes)}")
    return next(iter(dtypes))


def _dtype(target: PredictionTarget, dtypes: dict[str, str] | None, name: str,
           found: set[str]) -> str:
    kinds = {"string" if kind == "b64" else kind for kind in found}
    if dtypes is not None:
        dtype = dtypes[name]
        if dtype not in _VALUE_FIELDS:
            raise _unparsable(target, f"input {name!r} is {dtype}, which TF Serving's "
                              "JSON cannot carry")
        accepted = _VALUE_FIELDS[dtype][1]
        wrong = sorted(kind for kind in kinds
                       if kind != accepted and not (accepted == "number" and kind == "int"))
        if wrong:
            raise _unparsable(target, f"input {name!r} ({dtype}) holds a {wrong[0]} value")
        return dtype
    if kinds == {"bool"}:
        return "DT_BOOL"
    if kinds == {"string"}:
        return "DT_STRING"
    if kinds <= {"int", "number"}:
        return "DT_INT32" if kinds == {"int"} else "DT_FLOAT"
    raise _unparsable(target, f"input {name!r} mixes JSON value kinds {sorted(kinds)}")


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


def _tensor_proto(target: PredictionTarget, name: str, tensor: _Tensor, body: bytes
                  ) -> tensor_pb2.TensorProto:
    # Only a sample's values are built (it is small); the reader checked the shape and
    # `_dtype` the kinds.
    field, accepted, bounds = _VALUE_FIELDS[tensor.dtype]
    values = []
    rank = len(tensor.shape) - 1 if tensor.rows else len(tensor.shape)
    for start, end in tensor.spans:
        for leaf in _flat(json.loads(body[start:end]), rank):
            if bounds is not None and not bounds[0] <= leaf <= bounds[1]:
                raise _unparsable(target, f"input {name!r} ({tensor.dtype}) holds {leaf}")
            values.append(_bytes(target, leaf) if accepted == "string" else leaf)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(tensor.dtype))
    for size in tensor.shape:
        proto.tensor_shape.dim.add().size = size
    getattr(proto, field).extend(values)
    return proto


def _flat(value: Any, rank: int) -> Iterator[Any]:
    # At most MAX_DEPTH levels: the reader refused deeper bodies.
    if rank == 0:
        yield value
        return
    for item in value:
        yield from _flat(item, rank - 1)


def _examples(target: PredictionTarget, document: _Body) -> int:
    """How many examples the body holds (each a JSON object)."""
    examples = document.examples
    if examples is None or len(examples.shape) != 1 or not examples.shape[0]:
        raise _unparsable(target, "'examples' is not a non-empty list")
    if not examples.kinds <= {"object", "b64"}:
        raise _unparsable(target, "an example is not a JSON object")
    context = document.context
    if context is not None and (context.shape or not context.kinds <= {"object", "b64"}):
        raise _unparsable(target, "'context' is not a JSON object")
    return examples.shape[0]


def _examples_request(target: PredictionTarget, signature_name: str, document: _Body,
                      body: bytes) -> Message:
    request: classification_pb2.ClassificationRequest | regression_pb2.RegressionRequest = (
        classification_pb2.ClassificationRequest() if target.method == "Classify"
        else regression_pb2.RegressionRequest())
    _fill_spec(request.model_spec, target, signature_name)
    assert document.examples is not None
    if document.context is None:
        listed = request.input.example_list.examples
    else:
        start, end = document.context.span
        request.input.example_list_with_context.context.CopyFrom(
            _example(target, json.loads(body[start:end])))
        listed = request.input.example_list_with_context.examples
    start, end = document.examples.span
    for example in json.loads(body[start:end]):
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
