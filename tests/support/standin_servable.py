"""One loaded model version of the TF Serving stand-in (test-only).

Loads a SavedModel the way TF Serving does, through the converter's `ServingSession`
(the TF1 Session loader, its own graph and session), and runs Predict, Classify and
Regress against its signatures; what is TF Serving's own (request checks, warmup
records of every kind, unloading) is here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from converter import ServingSession
from tests.support.standin_errors import (
    StandinError,
    failed_precondition,
    from_tf_error_code,
    invalid_argument,
)

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000


class LoadedVersion:
    """A SavedModel version loaded into its own `ServingSession`."""

    def __init__(self, name: str, version: int, path: Path) -> None:
        self.name = name
        """Model name."""
        self.version = version
        """Version number (the directory name)."""
        self._closed = False
        self._lock = threading.Lock()
        self._served = ServingSession.load(path, ["serve"])
        self.signatures: dict[str, meta_graph_pb2.SignatureDef] = dict(
            self._served.meta_graph.signature_def)
        """SignatureDefs by key, as in the SavedModel."""

    def close(self) -> None:
        """Release the session."""
        with self._lock:
            self._closed = True
            self._served.close()

    # -- warmup ------------------------------------------------------------------------

    def run_warmup(self, version_dir: Path) -> int:
        """Replay `assets.extra/tf_serving_warmup_requests`; return the records run."""
        path = version_dir / WARMUP_FILE
        if not path.exists():
            return 0
        count = 0
        for record in _records(path):
            count += 1
            if count > MAX_WARMUP_RECORDS:
                raise invalid_argument(
                    f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}"
                )
            log = prediction_log_pb2.PredictionLog.FromString(record)
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                self.predict(log.predict_log.request)
            elif kind == "classify_log":
                self.classify(log.classify_log.request)
            elif kind == "regress_log":
                self.regress(log.regress_log.request)
            elif kind == "multi_inference_log":
                self.multi_inference(log.multi_inference_log.request)
            else:
                raise invalid_argument(f"Unsupported log_type for warmup: {kind}")
        return count

    # -- inference ---------------------------------------------------------------------

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """Run a Predict request against its signature."""
        key = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = self._signature(key)
        if signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
            raise invalid_argument(
                "Expected prediction signature method_name to be one of "
                f"{{{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. "
                f"Was: {signature.method_name}"
            )
        feeds = self._feeds(signature, request.inputs)
        wanted = list(request.output_filter) or sorted(signature.outputs)
        for alias in wanted:
            if alias not in signature.outputs:
                raise invalid_argument(
                    f"output tensor alias not found in signature: {alias} "
                    f"Outputs expected to be in the set {{{','.join(sorted(signature.outputs))}}}."
                )
        values = self._run(key, feeds, wanted)
        response = predict_pb2.PredictResponse()
        self._fill_spec(response.model_spec, key)
        for alias, value in zip(wanted, values, strict=True):
            response.outputs[alias].CopyFrom(tf.make_tensor_proto(value))
        return response

    def classify(
        self, request: classification_pb2.ClassificationRequest
    ) -> classification_pb2.ClassificationResponse:
        """Run a Classify request (signature method `tensorflow/serving/classify`)."""
        key = request.model_spec.signature_name or DEFAULT_SIGNATURE
        response = classification_pb2.ClassificationResponse()
        self._fill_spec(response.model_spec, key)
        response.result.CopyFrom(self._classify(key, request.input))
        return response

    def regress(
        self, request: regression_pb2.RegressionRequest
    ) -> regression_pb2.RegressionResponse:
        """Run a Regress request (signature method `tensorflow/serving/regress`)."""
        key = request.model_spec.signature_name or DEFAULT_SIGNATURE
        response = regression_pb2.RegressionResponse()
        self._fill_spec(response.model_spec, key)
        response.result.CopyFrom(self._regress(key, request.input))
        return response

    def multi_inference(
        self, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        """Run every classify or regress task of a MultiInference request on its input."""
        if not request.tasks:
            raise invalid_argument("Inference task list is empty")
        response = inference_pb2.MultiInferenceResponse()
        for task in request.tasks:
            key = task.model_spec.signature_name or DEFAULT_SIGNATURE
            result = response.results.add()
            self._fill_spec(result.model_spec, key)
            if task.method_name == CLASSIFY_METHOD:
                result.classification_result.CopyFrom(self._classify(key, request.input))
            elif task.method_name == REGRESS_METHOD:
                result.regression_result.CopyFrom(self._regress(key, request.input))
            else:
                raise invalid_argument(f"Unsupported signature method_name: {task.method_name}")
        return response

    def _classify(
        self, key: str, examples: input_pb2.Input
    ) -> classification_pb2.ClassificationResult:
        signature = self._examples_signature(key, CLASSIFY_METHOD, "classification")
        fetch_names = [name for name in ("classes", "scores") if name in signature.outputs]
        if not fetch_names:
            raise invalid_argument(
                "Expected classification signature outputs to contain classes or scores"
            )
        values = dict(
            zip(
                fetch_names,
                self._run(key, {"inputs": _serialized_examples(examples)}, fetch_names),
                strict=True,
            )
        )
        classes, scores = values.get("classes"), values.get("scores")
        reference = scores if scores is not None else classes
        assert reference is not None
        result = classification_pb2.ClassificationResult()
        for row in range(reference.shape[0]):
            classifications = result.classifications.add()
            for column in range(reference.shape[1]):
                entry = classifications.classes.add()
                if classes is not None:
                    label = classes[row, column]
                    entry.label = label.decode() if isinstance(label, bytes) else str(label)
                if scores is not None:
                    entry.score = float(scores[row, column])
        return result

    def _regress(self, key: str, examples: input_pb2.Input) -> regression_pb2.RegressionResult:
        signature = self._examples_signature(key, REGRESS_METHOD, "regression")
        if "outputs" not in signature.outputs:
            raise invalid_argument("Expected regression signature outputs to contain outputs")
        (values,) = self._run(key, {"inputs": _serialized_examples(examples)}, ["outputs"])
        result = regression_pb2.RegressionResult()
        flat: list[float] = np.reshape(values, (-1,)).astype(float).tolist()
        for value in flat:
            result.regressions.add().value = value
        return result

    # -- plumbing ----------------------------------------------------------------------

    def _signature(self, key: str) -> meta_graph_pb2.SignatureDef:
        try:
            return self.signatures[key]
        except KeyError:
            raise failed_precondition(f'Serving signature key "{key}" not found.') from None

    def _examples_signature(self, key: str, method: str, kind: str) -> meta_graph_pb2.SignatureDef:
        signature = self._signature(key)
        if signature.method_name != method:
            raise invalid_argument(
                f"Expected {kind} signature method_name to be {method}. "
                f"Was: {signature.method_name}"
            )
        if "inputs" not in signature.inputs:
            raise invalid_argument(f"Expected {kind} signature to have an input named inputs")
        return signature

    def _feeds(self, signature: meta_graph_pb2.SignatureDef, inputs: Any) -> dict[str, np.ndarray]:
        for alias in inputs:
            if alias not in signature.inputs:
                raise invalid_argument(
                    f"input tensor alias not found in signature: {alias}. Inputs expected to "
                    f"be in the set {{{','.join(sorted(signature.inputs))}}}."
                )
        missing = sorted(set(signature.inputs) - set(inputs))
        if missing:
            raise invalid_argument(
                f"Request inputs do not match required inputs for model. "
                f"Missing inputs: {{{','.join(missing)}}}"
            )
        feeds: dict[str, np.ndarray] = {}
        for alias, tensor in inputs.items():
            expected = signature.inputs[alias]
            if tensor.dtype != expected.dtype:
                raise invalid_argument(
                    f"Expects arg {alias} to be {tf.dtypes.as_dtype(expected.dtype).name} but "
                    f"{_dtype_name(tensor.dtype)} is provided"
                )
            try:
                feeds[alias] = tf.make_ndarray(tensor)
            except (ValueError, TypeError) as error:
                raise invalid_argument(f"input {alias} is not a valid tensor: {error}") from error
        return feeds

    def _run(self, key: str, feeds: dict[str, Any], outputs: Sequence[str]) -> list[np.ndarray]:
        with self._lock:
            closed = self._closed
        try:
            if closed:
                raise RuntimeError("closed session")
            return self._served.caller(key, feeds, outputs)()
        except RuntimeError as error:
            raise StandinError(
                grpc.StatusCode.UNAVAILABLE, f"{self.name} version {self.version} was unloaded"
            ) from error
        except tf.errors.OpError as error:
            raise from_tf_error_code(error.error_code, error.message) from error
        except (ValueError, TypeError) as error:
            raise invalid_argument(str(error)) from error

    def _fill_spec(self, spec: model_pb2.ModelSpec, key: str) -> None:
        spec.name = self.name
        spec.version.value = self.version
        spec.signature_name = key


def _records(path: Path) -> Iterator[bytes]:
    try:
        yield from tf.compat.v1.io.tf_record_iterator(str(path))
    except tf.errors.OpError as error:
        raise invalid_argument(f"cannot read warmup file {path}: {error.message}") from error


def _serialized_examples(examples: input_pb2.Input) -> np.ndarray:
    kind = examples.WhichOneof("kind")
    if kind == "example_list":
        rows = [example.SerializeToString() for example in examples.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = examples.example_list_with_context
        rows = []
        for example in with_context.examples:
            merged = type(example)()
            merged.CopyFrom(with_context.context)
            merged.MergeFrom(example)
            rows.append(merged.SerializeToString())
    else:
        raise invalid_argument("Input is empty")
    if not rows:
        raise invalid_argument("Input is empty")
    return np.array(rows, dtype=object)


def _dtype_name(enum_value: int) -> str:
    try:
        return str(tf.dtypes.as_dtype(enum_value).name)
    except TypeError:
        return f"dtype {enum_value}"
