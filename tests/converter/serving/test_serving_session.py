"""The one runner that serves a SavedModel the way TF Serving does (TF1 Session loader)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

import converter as trt

X = np.array([[1.0], [4.0], [-2.0]], np.float32)


def _examples(*values: float) -> np.ndarray:
    return np.array([
        tf.train.Example(features=tf.train.Features(feature={
            "x": tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
        })).SerializeToString() for v in values
    ], dtype=object)


def test_runs_each_signature_with_the_variables_the_loader_restored(
        tf1_dir: pathlib.Path) -> None:
    with trt.ServingSession.load(tf1_dir, ["serve"]) as served:
        assert served.signature_keys() == ["classify_x_to_y", "regress_x_to_y",
                                           "serving_default"]
        assert served.signature_def("classify_x_to_y").method_name == (
            "tensorflow/serving/classify")
        (spec,) = served.input_specs("serving_default").values()
        assert (spec.dtype, spec.shape.as_list()) == (tf.float32, [None, 1])
        outputs = served.run("serving_default", {"x": X})
        assert list(outputs) == ["y"]
        np.testing.assert_allclose(outputs["y"], 0.5 * X + 2.0, rtol=1e-6)
        regressed = served.run("regress_x_to_y", {"inputs": _examples(1.0, 4.0)})
        np.testing.assert_allclose(regressed["outputs"], [[2.5], [4.0]], rtol=1e-6)
        call = served.caller("serving_default", {"x": X})
        np.testing.assert_array_equal(call()[0], call()[0])


def test_a_missing_signature_names_those_there_are(tf1_dir: pathlib.Path) -> None:
    with trt.ServingSession.load(tf1_dir) as served, pytest.raises(
            trt.SavedModelError, match=r"no signature 'predict'.*'serving_default'"):
        served.run("predict", {"x": X})


def test_a_directory_without_a_model_raises_the_loaders_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(OSError, match="SavedModel file does not exist"):
        trt.ServingSession.load(tmp_path)


def test_a_closed_session_runs_nothing(tf1_dir: pathlib.Path) -> None:
    served = trt.ServingSession.load(tf1_dir)
    served.close()
    with pytest.raises(RuntimeError):
        served.run("serving_default", {"x": X})


def test_replays_predict_requests_on_the_signature_they_name(tf1_dir: pathlib.Path) -> None:
    default = predict_pb2.PredictRequest()
    default.inputs["x"].CopyFrom(tf.make_tensor_proto(X))
    regress = predict_pb2.PredictRequest()
    regress.model_spec.signature_name = "regress_x_to_y"
    regress.inputs["inputs"].CopyFrom(tf.make_tensor_proto(_examples(2.0)))
    wrong = predict_pb2.PredictRequest()
    wrong.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((2, 3), np.float32)))
    with trt.ServingSession.load(tf1_dir) as served:
        assert served.replay_predict_requests([default, regress, default]) == 3
        with pytest.raises(ValueError, match="shape"):
            served.replay_predict_requests([default, wrong])


def test_largest_error_compares_with_scaled_error(tf1_dir: pathlib.Path) -> None:
    feeds = [{"x": X}, {"x": 2 * X}]
    with trt.ServingSession.load(tf1_dir) as served:
        exact = [served.run("serving_default", feed) for feed in feeds]
        assert served.largest_error("serving_default", feeds, exact) == 0.0
        off = [exact[0], {"y": exact[1]["y"] + 0.5}]
        expected = trt.scaled_error([off[1]["y"] - 0.5], [off[1]["y"]])
        assert served.largest_error("serving_default", feeds, off) == pytest.approx(expected)
        assert expected > 0.0
