"""TF Serving's REST API for the stand-in. TEST-ONLY: the TF Serving binary cannot run here.

It serves the models of a running gRPC stand-in (the same `ModelRegistry`) the way TF
Serving's HTTP server does (`http_rest_api_handler.cc`, `json_tensor.cc`): POST
`/v1/models/<name>[/versions/<n>|/labels/<label>]:(predict|classify|regress)` with the row
(`instances`) or columnar (`inputs`) JSON format, typed by the signature's dtypes; GET
`/v1/models/<name>[...]` (status) and `.../metadata`; OPTIONS (CORS preflight, CORS support
off); errors as `{"error": "..."}` with TF Serving's HTTP status for the gRPC code;
any path outside `/v1/` is 404. Deviation: JSON is written by Python (4-space indent).

Test hook TF Serving does not have: every request is logged (`RestStandin.requests()`).
"""

from __future__ import annotations

import base64
import collections
import gzip
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from tests.support.standin_errors import StandinError, invalid_argument
from tests.support.standin_registry import ModelRegistry
from tests.support.standin_service import model_metadata, model_status

_PREDICTION = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
    r":(classify|regress|predict)"
)
_STATUS = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?"
)
_HTTP_STATUS = {  # TF Serving's ToHTTPStatusCode
    grpc.StatusCode.OK: 200, grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500, grpc.StatusCode.UNAUTHENTICATED: 401,
}


@dataclass(frozen=True)
class RestRequest:
    """A request the REST stand-in received."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


class RestStandin:
    """A running REST stand-in: `address`, `requests()`, `stop()`."""

    def __init__(self, registry: ModelRegistry, host: str = "127.0.0.1", port: int = 0) -> None:
        self._registry = registry
        self._log: collections.deque[RestRequest] = collections.deque(maxlen=256)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_class(self))
        self._server.daemon_threads = True
        self.address = f"{host}:{self._server.server_address[1]}"
        """`host:port` to connect to."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="standin-rest")
        self._thread.start()

    def requests(self) -> list[RestRequest]:
        """The requests received lately, oldest first."""
        with self._lock:
            return list(self._log)

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def answer(self, request: RestRequest) -> tuple[int, bytes]:
        """The HTTP status and body TF Serving answers `request` with."""
        with self._lock:
            self._log.append(request)
        path = request.path.partition("?")[0]
        if not re.fullmatch(r"(?i)/v1/.*", path):
            return 404, b""
        if request.method == "OPTIONS":
            origin = dict(request.headers).get("origin", "")
            return (200 if re.match(r"https?://", origin) else 400), b""
        try:
            body = self._dispatch(request.method, path, request.body)
        except StandinError as error:
            return _HTTP_STATUS[error.code], _dumps({"error": error.message})
        return 200, body

    def _dispatch(self, method: str, path: str, body: bytes) -> bytes:
        prediction = _PREDICTION.fullmatch(path) if method == "POST" else None
        status = _STATUS.fullmatch(path) if method == "GET" else None
        if prediction is not None:
            name, version, label, verb = prediction.groups()
            spec = _model_spec(name, version, label)
            document = _parse(body)
            if verb.lower() == "predict":
                return self._predict(spec, document)
            return self._classify_or_regress(spec, document, verb.lower())
        if status is not None:
            name, version, label, metadata = status.groups()
            if not name:
                raise invalid_argument("Missing model name in request.")
            spec = _model_spec(name, version, label)
            if metadata:
                request = get_model_metadata_pb2.GetModelMetadataRequest(
                    metadata_field=["signature_def"])
                request.model_spec.CopyFrom(spec)
                return _metadata_json(model_metadata(self._registry, request))
            return _proto_json(model_status(self._registry, spec))
        raise invalid_argument(f"Malformed request: {method} {path}")

    def _predict(self, spec: model_pb2.ModelSpec, document: dict[str, Any]) -> bytes:
        signature_name = _signature_name(document)
        spec.signature_name = signature_name
        servable = self._registry.servable_for(spec)
        key = signature_name or "serving_default"
        if key not in servable.signatures:
            raise invalid_argument(f'Serving signature name: "{key}" not found in signature def')
        inputs = dict(servable.signatures[key].inputs)
        if ("instances" in document) == ("inputs" in document):
            raise invalid_argument("Missing 'inputs' or 'instances' key" if "inputs" not in
                                   document else "expecting only one of 'inputs' or 'instances'")
        row = "instances" in document
        values = _row_values(document["instances"], inputs) if row else _columns(
            document["inputs"], inputs)
        request = predict_pb2.PredictRequest(model_spec=spec)
        for name, value in values.items():
            dtype = tf.dtypes.as_dtype(inputs[name].dtype)
            try:
                array = np.array(_decoded(value), dtype=object if dtype == tf.string
                                 else dtype.as_numpy_dtype)
            except (ValueError, TypeError) as error:
                raise invalid_argument(f"input {name}: {error}") from error
            request.inputs[name].CopyFrom(tf.make_tensor_proto(array, dtype=dtype))
        outputs = {name: tf.make_ndarray(tensor)
                   for name, tensor in servable.predict(request).outputs.items()}
        if not row:
            columns = {name: _json_values(array) for name, array in outputs.items()}
            return _dumps({"outputs": next(iter(columns.values())) if len(columns) == 1
                           else columns})
        if len(outputs) == 1:
            return _dumps({"predictions": _json_values(next(iter(outputs.values())))})
        batch = len(next(iter(outputs.values())))
        return _dumps({"predictions": [{name: _json_values(array[index])
                                        for name, array in outputs.items()}
                                       for index in range(batch)]})

    def _classify_or_regress(self, spec: model_pb2.ModelSpec, document: dict[str, Any],
                             verb: str) -> bytes:
        spec.signature_name = _signature_name(document)
        examples = document.get("examples")
        if not isinstance(examples, list) or not examples:
            raise invalid_argument("'examples' must be a non-empty list")
        target: Any
        if verb == "classify":
            classify = classification_pb2.ClassificationRequest(model_spec=spec)
            target = classify.input
        else:
            regress = regression_pb2.RegressionRequest(model_spec=spec)
            target = regress.input
        if "context" in document:
            target.example_list_with_context.context.CopyFrom(_example(document["context"]))
            for item in examples:
                target.example_list_with_context.examples.add().CopyFrom(_example(item))
        else:
            for item in examples:
                target.example_list.examples.add().CopyFrom(_example(item))
        servable = self._registry.servable_for(spec)
        if verb == "classify":
            result = servable.classify(classify).result
            return _dumps({"result": [[[entry.label, _float(entry.score)]
                                       for entry in row.classes]
                                      for row in result.classifications]})
        regressions = servable.regress(regress).result.regressions
        return _dumps({"result": [_float(entry.value) for entry in regressions]})


def start_rest_standin(registry: ModelRegistry, host: str = "127.0.0.1") -> RestStandin:
    """Serve `registry`'s models over REST on a free port of `host`."""
    return RestStandin(registry, host)


def _handler_class(standin: RestStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving's libevent server
        # Headers and body go out in two writes: without this a client's delayed ACK
        # holds the body back 40 ms (TF Serving sends one buffer).
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            body = _read_body(self)
            headers = tuple((key.lower(), value) for key, value in self.headers.items())
            status, answer = standin.answer(RestRequest(self.command, self.path, headers, body))
            self.send_response(status)
            if answer:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_OPTIONS = do_PUT = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read `requests()` instead."""

    return Handler


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    body = _read_raw_body(handler)
    # TF Serving inflates a body whose Content-Encoding names gzip.
    return gzip.decompress(body) if "gzip" in handler.headers.get("Content-Encoding", "") \
        else body


def _read_raw_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0], 16)
            if size == 0:  # the last chunk: trailers, if any, up to an empty line
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size + 2)[:size])  # the chunk and its CRLF
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def _model_spec(name: str, version: str | None, label: str | None) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=urllib.parse.unquote(name))
    if version:
        spec.version.value = int(version)
    if label:
        spec.version_label = urllib.parse.unquote(label)
    return spec


def _parse(body: bytes) -> dict[str, Any]:
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid_argument(f"JSON Parse error: {error}") from error
    if not isinstance(document, dict):
        raise invalid_argument("JSON Value: Is not object")
    return document


def _signature_name(document: dict[str, Any]) -> str:
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument("'signature_name' key must be a string value.")
    return name


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _row_values(instances: Any, inputs: dict[str, Any]) -> dict[str, list[Any]]:
    if not isinstance(instances, list) or not instances:
        raise invalid_argument("Expecting 'instances' to be a non-empty list/array")
    if not (isinstance(instances[0], dict) and not _is_b64(instances[0])):
        if len(inputs) > 1:
            raise invalid_argument("instances is a plain list, but expecting list of objects "
                                   "as multiple input tensors required as per tensorinfo_map")
        return {next(iter(inputs)): instances}
    values: dict[str, list[Any]] = {name: [] for name in inputs}
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict) or set(instance) != set(inputs):
            raise invalid_argument(f"Failed to process element: {index} of 'instances' list. "
                                   f"keys must be equal to: {','.join(sorted(inputs))}")
        for name, value in instance.items():
            values[name].append(value)
    return values


def _columns(columns: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(columns, dict) or _is_b64(columns):
        if len(inputs) > 1:
            raise invalid_argument("inputs is a plain value/list, but expecting an object as "
                                   "multiple input tensors required as per tensorinfo_map")
        return {next(iter(inputs)): columns}
    for name in inputs:
        if name not in columns:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
    return {name: columns[name] for name in inputs}


def _decoded(value: Any) -> Any:
    if isinstance(value, list):
        return [_decoded(item) for item in value]
    if _is_b64(value):
        return base64.b64decode(value["b64"])
    return value.encode() if isinstance(value, str) else value


def _example(features: Any) -> tf.train.Example:
    if not isinstance(features, dict):
        raise invalid_argument("Example must be JSON object")
    example = tf.train.Example()
    for name, content in features.items():
        feature = example.features.feature[name]
        for value in content if isinstance(content, list) else [content]:
            if isinstance(value, int):  # booleans too (1 and 0)
                feature.int64_list.value.append(int(value))
            elif isinstance(value, float):
                feature.float_list.value.append(value)
            elif isinstance(value, str) or _is_b64(value):
                feature.bytes_list.value.append(_decoded(value))
            else:
                raise invalid_argument(f"Feature: {name} has element with unexpected JSON type")
    return example


def _float(value: float) -> float:
    # TF Serving writes a float32 with the fewest digits that read back as it (0.2, not
    # 0.20000000298023224).
    return float(str(np.float32(value)))


def _json_values(array: np.ndarray) -> Any:
    if array.dtype == np.float32:
        return _each(array, _float)
    if array.dtype == object:
        return _each(array, bytes.decode)
    return array.tolist()


def _each(array: np.ndarray, convert: Any) -> Any:
    return np.vectorize(convert, otypes=[object])(array).tolist()


def _dumps(document: Any) -> bytes:
    return json.dumps(document, indent=4).encode()


def _proto_json(message: Any) -> bytes:
    return json_format.MessageToJson(message, always_print_fields_with_no_presence=True,
                                     indent=1).encode()


def _metadata_json(response: Any) -> bytes:
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    return _dumps({
        "model_spec": json_format.MessageToDict(response.model_spec,
                                                preserving_proto_field_name=True),
        "metadata": {"signature_def": json_format.MessageToDict(
            signatures, preserving_proto_field_name=True)},
    })
