"""An input_fn's dict is read by name, whatever its key order: the converter passes the
inputs on by position, so a dict in another order once built engines for swapped shapes."""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf

import converter as trt


class _TwoInputs(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weights = tf.Variable(np.eye(4, dtype=np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="b"),
                                  tf.TensorSpec([None, 4], tf.float32, name="a")])
    def serve(self, b: tf.Tensor, a: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": tf.nn.relu(tf.matmul(a, self.weights) + 1.0) * tf.reduce_sum(b)}


def _engine_shapes(directory: pathlib.Path,
                   feed: dict[str, np.ndarray]) -> list[list[list[int]]]:
    converter = trt.Converter(directory)
    converter.convert()
    converter.build(lambda: iter([feed]))
    return [engine.shapes for segment in converter.report().segments
            for engine in segment.engines]


def test_engines_are_built_for_the_shapes_of_the_named_inputs(tmp_path: pathlib.Path) -> None:
    module = _TwoInputs()
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve})
    a: np.ndarray = np.ones((3, 4), np.float32)
    b: np.ndarray = np.ones((5, 4), np.float32)
    in_order = _engine_shapes(tmp_path / "m", {"a": a, "b": b})
    assert in_order and sorted(in_order[0]) == [[3, 4], [5, 4]]
    assert _engine_shapes(tmp_path / "m", {"b": b, "a": a}) == in_order
