"""The converted model loads the way TF Serving loads it, with every signature."""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf

import converter as trt
from converter.savedmodel.synthetic import batch_input_fn
from tests.support.session_run import eager_outputs, method_names, session_outputs


def test_tf1_model_keeps_classify_and_regress(tf1_dir: pathlib.Path,
                                              tmp_path: pathlib.Path) -> None:
    converter = trt.Converter(tf1_dir, conversion_params=trt.ConversionParams(
        minimum_segment_size=1))
    converter.convert()
    converter.build(batch_input_fn(converter.input_specs, [3]))
    converter.save(tmp_path / "out")
    assert method_names(tmp_path / "out") == method_names(tf1_dir) == {
        "serving_default": "tensorflow/serving/predict",
        "classify_x_to_y": "tensorflow/serving/classify",
        "regress_x_to_y": "tensorflow/serving/regress",
    }
    x = np.array([[1.0], [4.0], [-2.0]], np.float32)
    (predicted,) = session_outputs(tmp_path / "out", [{"x": x}])
    np.testing.assert_allclose(predicted["y"], 0.5 * x + 2.0, rtol=1e-6)
    examples = np.array([
        tf.train.Example(features=tf.train.Features(feature={
            "x": tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
        })).SerializeToString() for v in (1.0, 4.0)
    ], dtype=object)
    for key, output in (("classify_x_to_y", "scores"), ("regress_x_to_y", "outputs")):
        (result,) = session_outputs(tmp_path / "out", [{"inputs": examples}], key)
        np.testing.assert_allclose(result[output], [[2.5], [4.0]], rtol=1e-6)


def test_keras_model_in_a_tf_module_becomes_servable(tmp_path: pathlib.Path) -> None:
    """Such a model loads in TF2 but not in the TF1 Session loader (DESIGN fact 10);
    the converted one loads there and answers as the original does in TF2."""
    import keras

    keras.utils.set_random_seed(9)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2)])

    class Wrapper(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": self.model(x)}

    wrapper = Wrapper()
    source = tmp_path / "wrapped"
    tf.saved_model.save(wrapper, str(source), signatures={"serving_default": wrapper.serve})
    feed = {"x": np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)}
    try:
        session_outputs(source, [feed])
        raise AssertionError("the original was expected to fail in the Session loader")
    except tf.errors.FailedPreconditionError:
        pass
    converter = trt.Converter(source)
    converter.convert()
    converter.build(batch_input_fn(converter.input_specs, [5]))
    converter.save(tmp_path / "out")
    (served,) = session_outputs(tmp_path / "out", [feed])
    (original,) = eager_outputs(source, [feed])
    np.testing.assert_allclose(served["y"], original["y"], rtol=1e-5, atol=1e-6)
