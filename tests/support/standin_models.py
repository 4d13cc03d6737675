"""Tiny SavedModels for the TF Serving stand-in's tests and the tap benchmark (test-only).

`save_affine_model` writes one version: a `tf.Module` with variables and signatures
`serving_default` (predict: x float32 [None, 4] -> y = x * scale + offset),
`classify` (tf.Example feature `x` -> `classes`, `scores`) and `regress` (-> `outputs`).
Method names of `classify`/`regress` are put back after `tf.saved_model.save` (which
writes every signature as predict), as TF1-era models have them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

FEATURES = 4
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


class _Affine(tf.Module):
    def __init__(self, scale: float, offset: float) -> None:
        super().__init__()
        self.scale = tf.Variable(tf.fill([FEATURES], scale), name="scale")
        self.offset = tf.Variable(offset, name="offset")

    @tf.function(input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="x")])
    def predict(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": x * self.scale + self.offset}

    def _features(self, serialized: tf.Tensor) -> tf.Tensor:
        parsed = tf.io.parse_example(
            serialized, {"x": tf.io.FixedLenFeature([FEATURES], tf.float32)}
        )
        return parsed["x"] * self.scale + self.offset

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = self._features(inputs)[:, :2]
        batch = tf.shape(logits)[0]
        classes = tf.tile(tf.constant([["neg", "pos"]]), [batch, 1])
        return {"classes": classes, "scores": tf.nn.softmax(logits)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"outputs": tf.reduce_sum(self._features(inputs), axis=1, keepdims=True)}


def save_affine_model(
    version_dir: Path,
    scale: float = 2.0,
    offset: float = 0.5,
    warmup: Sequence[prediction_log_pb2.PredictionLog] = (),
) -> Path:
    """Write a servable version to `version_dir` (which must not exist); returns it."""
    module = _Affine(scale, offset)
    tf.saved_model.save(
        module,
        str(version_dir),
        signatures={
            "serving_default": module.predict,
            "classify": module.classify,
            "regress": module.regress,
        },
    )
    _set_method_names(version_dir, {"classify": CLASSIFY_METHOD, "regress": REGRESS_METHOD})
    if warmup:
        write_warmup(version_dir, warmup)
    return version_dir


def _set_method_names(version_dir: Path, methods: dict[str, str]) -> None:
    path = version_dir / "saved_model.pb"
    saved = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for meta_graph in saved.meta_graphs:
        for key, method in methods.items():
            meta_graph.signature_def[key].method_name = method
    path.write_bytes(saved.SerializeToString())


def write_warmup(version_dir: Path, logs: Sequence[prediction_log_pb2.PredictionLog]) -> Path:
    """Write `logs` as `assets.extra/tf_serving_warmup_requests` of `version_dir`."""
    path = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def predict_request(
    model: str, batch: int = 1, signature: str = "", version: int | None = None
) -> predict_pb2.PredictRequest:
    """A Predict request for the affine model with `batch` rows of x."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if signature:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    values: np.ndarray = np.arange(batch * FEATURES, dtype=np.float32).reshape(batch, FEATURES)
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(values))
    return request


def predict_log(request: predict_pb2.PredictRequest) -> prediction_log_pb2.PredictionLog:
    """`request` as a warmup record."""
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.CopyFrom(request)
    return log


def example(values: Sequence[float]) -> tf.train.Example:
    """A tf.Example with float feature `x` (what the classify/regress signatures parse)."""
    return tf.train.Example(
        features=tf.train.Features(
            feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))}
        )
    )
