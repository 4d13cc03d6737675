"""Test-only builders of real SavedModels, each exported the way users export them."""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf


def keras_mlp(directory: pathlib.Path, features: int = 16, seed: int = 1) -> pathlib.Path:
    """A small Keras 3 MLP exported with `model.export` (TF Serving can load it); `seed`
    draws its weights."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((features,), name="x"),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(4, activation="softmax"),
    ])
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return directory


def text_classifier(directory: pathlib.Path) -> pathlib.Path:
    """Strings in: TextVectorization (a StringLookup inside), embedding, dense."""
    import keras

    keras.utils.set_random_seed(3)
    vectorize = keras.layers.TextVectorization(
        max_tokens=32, output_sequence_length=6,
        vocabulary=["good", "bad", "movie", "plot", "great", "awful", "the", "a"],
    )
    model = keras.Sequential([
        keras.Input((1,), dtype="string", name="text"),
        vectorize,
        keras.layers.Embedding(32, 8),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return directory


class _LoopModel(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable(np.random.default_rng(4).standard_normal((8, 8)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        def body(i: tf.Tensor, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return i + 1, tf.tanh(tf.matmul(h, self.w) + 0.1)

        _, h = tf.while_loop(lambda i, h: i < 3, body, (tf.constant(0), x))
        total = tf.reduce_sum(h)
        y = tf.cond(total > 0.0, lambda: h * 2.0 + 1.0, lambda: tf.nn.relu(h) - 1.0)
        return {"y": tf.nn.softmax(tf.matmul(y, self.w))}


def while_cond_model(directory: pathlib.Path) -> pathlib.Path:
    """A tf.Module whose signature has a tf.while_loop and a tf.cond."""
    module = _LoopModel()
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return directory


class _MixedModel(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = tf.Variable(
            np.random.default_rng(5).standard_normal((10, 4)).astype(np.float32))
        self.scale = tf.Variable(np.float32(0.5))

    @tf.function(input_signature=[
        tf.TensorSpec([None, 4], tf.float32, name="dense"),
        tf.TensorSpec([None], tf.int64, name="ids"),
        tf.TensorSpec([None], tf.int32, name="weights"),
    ])
    def serve(self, dense: tf.Tensor, ids: tf.Tensor, weights: tf.Tensor) -> dict[str, tf.Tensor]:
        looked_up = tf.gather(self.table, ids % 10)
        mixed = tf.nn.relu(dense * self.scale + looked_up) * tf.cast(weights, tf.float32)[:, None]
        score = tf.reduce_sum(tf.sigmoid(mixed) * 3.0 + 1.0, axis=1)
        return {
            "score": score,
            "top": tf.argmax(mixed, axis=1, output_type=tf.int64) + ids * 2,
            "count": tf.reduce_sum(weights * 2 + 1),
        }


def mixed_dtype_model(directory: pathlib.Path) -> pathlib.Path:
    """Three inputs (float32, int64, int32) and three outputs (float32, int64, int32)."""
    module = _MixedModel()
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return directory


def tf1_classify_regress(directory: pathlib.Path) -> pathlib.Path:
    """A TF1-style SavedModel (Session builder) with predict, classify and regress
    signatures, like TF Serving's saved_model_half_plus_two test models."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        a = tf.compat.v1.get_variable("a", initializer=np.float32(0.5))
        b = tf.compat.v1.get_variable("b", initializer=np.float32(2.0))
        x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
        y = tf.identity(a * x + b, name="y")
        serialized = tf.compat.v1.placeholder(tf.string, [None], name="tf_example")
        parsed = tf.io.parse_example(
            serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})
        scores = tf.identity(a * parsed["x"] + b, name="scores")
        session.run(tf.compat.v1.global_variables_initializer())
        info = tf.compat.v1.saved_model.utils.build_tensor_info
        signatures = {
            "serving_default": tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
                {"x": info(x)}, {"y": info(y)}, "tensorflow/serving/predict"),
            "classify_x_to_y": tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
                {"inputs": info(serialized)}, {"scores": info(scores)},
                "tensorflow/serving/classify"),
            "regress_x_to_y": tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
                {"inputs": info(serialized)}, {"outputs": info(scores)},
                "tensorflow/serving/regress"),
        }
        builder = tf.compat.v1.saved_model.Builder(str(directory))
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
        builder.save()
    return directory


def build_tiny_saved_model(path: pathlib.Path, *, scale: float = 1.0) -> pathlib.Path:
    """Save a tf.Module with one Variable and a serving_default signature (x[?,2] -> y[?,1])."""
    class Tiny(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = tf.Variable([[1.0 * scale], [2.0 * scale]], name="weights")

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.matmul(x, self.weights)}

    module = Tiny()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path
