"""The models TF Serving serves, built from code: Keras applications, a transformer
encoder, TF1 Estimator-style exports, a stateful counter, an unknown-rank input."""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

IMAGE_SIZE = 64
"""Keras applications are built for 64x64 images: small enough for CI."""
SEQUENCE, WIDTH = 32, 64
"""The transformer encoder's input: 32 tokens of width 64."""
VOCABULARY = ("red", "green", "blue")


def keras_application(directory: pathlib.Path, name: str,
                      size: int = IMAGE_SIZE) -> pathlib.Path:
    """MobileNetV2, ResNet50 or EfficientNetB0, random weights, `size`x`size` inputs."""
    import keras

    keras.utils.set_random_seed(2)
    builder = {"MobileNetV2": keras.applications.MobileNetV2,
               "ResNet50": keras.applications.ResNet50,
               "EfficientNetB0": keras.applications.EfficientNetB0}[name]
    model = builder(weights=None, input_shape=(size, size, 3))
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return directory


def transformer_encoder(directory: pathlib.Path, layers: int = 2, sequence: int = SEQUENCE,
                        width: int = WIDTH) -> pathlib.Path:
    """A small encoder from Keras layers: self-attention and a feed-forward block,
    each with a residual and LayerNorm, then a pooled classifier."""
    import keras

    keras.utils.set_random_seed(6)
    tokens = keras.Input((sequence, width), name="tokens")
    hidden = tokens
    for _ in range(layers):
        attended = keras.layers.MultiHeadAttention(num_heads=4, key_dim=width // 4)(
            hidden, hidden)
        hidden = keras.layers.LayerNormalization()(hidden + attended)
        fed = keras.layers.Dense(width * 2, activation="gelu")(hidden)
        hidden = keras.layers.LayerNormalization()(hidden + keras.layers.Dense(width)(fed))
    pooled = keras.layers.GlobalAveragePooling1D()(hidden)
    scores = keras.layers.Dense(8, activation="softmax", name="scores")(pooled)
    keras.Model(tokens, scores).export(str(directory), format="tf_saved_model", verbose=False)
    return directory


def demo_mlp(directory: pathlib.Path) -> pathlib.Path:
    """The demo's model (`tftrt demo`): a transformer-style MLP block over tokens."""
    from converter.demo import build_demo_model

    return build_demo_model(directory)


class _Counter(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.count = tf.Variable(0, dtype=tf.int64)
        self.w = tf.Variable(np.random.default_rng(8).standard_normal((4, 4)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        calls = self.count.assign_add(1)
        hidden = tf.nn.relu(tf.matmul(x, self.w) + 1.0)
        return {"y": tf.tanh(tf.matmul(hidden, self.w)), "calls": calls + 0}

    @tf.function(input_signature=[])
    def peek(self) -> dict[str, tf.Tensor]:
        return {"calls": self.count.read_value()}


def stateful_counter(directory: pathlib.Path) -> pathlib.Path:
    """`serving_default` counts its calls in a variable; `peek` reads the count."""
    module = _Counter()
    tf.saved_model.save(module, str(directory),
                        signatures={"serving_default": module.serve, "peek": module.peek})
    return directory


def _example(x: tuple[float, float], colour: str) -> bytes:
    feature = {
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=list(x))),
        "colour": tf.train.Feature(bytes_list=tf.train.BytesList(value=[colour.encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def examples() -> np.ndarray:
    """Serialized tf.Example strings for the TF1 Estimator-style model."""
    return np.array([_example((1.0, 2.0), "red"), _example((-1.0, 0.5), "blue"),
                     _example((0.0, 3.0), "purple")], dtype=object)


def tf1_estimator(directory: pathlib.Path) -> pathlib.Path:
    """An Estimator-style TF1 export (tf.compat.v1.saved_model.Builder): reference
    variables, a vocabulary asset behind a lookup table, a main op that initialises
    it, and predict, classify and regress signatures over serialized tf.Example."""
    vocabulary = directory.parent / f"{directory.name}-vocabulary.txt"
    vocabulary.write_text("\n".join(VOCABULARY) + "\n")
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        serialized = tf.compat.v1.placeholder(tf.string, [None], name="input_example_tensor")
        features = tf.io.parse_example(serialized, {
            "x": tf.io.FixedLenFeature([2], tf.float32),
            "colour": tf.io.FixedLenFeature([], tf.string, default_value=""),
        })
        asset = tf.constant(str(vocabulary), name="vocabulary_path")
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS, asset)
        table = tf.compat.v1.lookup.StaticHashTable(tf.compat.v1.lookup.TextFileInitializer(
            asset, tf.string, tf.compat.v1.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64, tf.compat.v1.lookup.TextFileIndex.LINE_NUMBER), default_value=3)
        rng = np.random.default_rng(12)
        kernel = tf.compat.v1.get_variable(
            "dense/kernel", initializer=rng.standard_normal((2, 8)).astype(np.float32),
            use_resource=False)
        bias = tf.compat.v1.get_variable("dense/bias", initializer=np.zeros(8, np.float32),
                                         use_resource=False)
        embedding = tf.compat.v1.get_variable(
            "colour/embedding", initializer=rng.standard_normal((4, 8)).astype(np.float32),
            use_resource=False)
        head = tf.compat.v1.get_variable(
            "head/kernel", initializer=rng.standard_normal((8, 1)).astype(np.float32),
            use_resource=False)
        hidden = tf.nn.relu(tf.matmul(features["x"], kernel) + bias
                            + tf.gather(embedding, table.lookup(features["colour"])))
        logits = tf.matmul(hidden, head)
        probability = tf.sigmoid(logits)
        scores = tf.concat([1.0 - probability, probability], axis=1, name="scores")
        classes = tf.tile(tf.constant([["0", "1"]]), [tf.shape(scores)[0], 1], name="classes")
        main_op = tf.group(tf.compat.v1.tables_initializer(),
                           tf.compat.v1.local_variables_initializer(), name="main_op")
        session.run([tf.compat.v1.global_variables_initializer(), main_op])
        info = tf.compat.v1.saved_model.utils.build_tensor_info
        build = tf.compat.v1.saved_model.signature_def_utils.build_signature_def
        signatures = {
            "serving_default": build({"inputs": info(serialized)},
                                     {"classes": info(classes), "scores": info(scores)},
                                     "tensorflow/serving/classify"),
            "regression": build({"inputs": info(serialized)}, {"outputs": info(logits)},
                                "tensorflow/serving/regress"),
            "predict": build({"examples": info(serialized)},
                             {"probabilities": info(probability), "logits": info(logits)},
                             "tensorflow/serving/predict"),
        }
        builder = tf.compat.v1.saved_model.Builder(str(directory))
        builder.add_meta_graph_and_variables(
            session, ["serve"], signature_def_map=signatures, main_op=main_op,
            assets_collection=tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS))
        builder.save()
    vocabulary.unlink()  # the export carries its own copy under assets/
    return directory


def tf1_unknown_rank(directory: pathlib.Path) -> pathlib.Path:
    """A TF1 export whose signature leaves its input's rank open; the graph's
    placeholder says (None, 1). tf.saved_model.load cannot load it."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
        weight = tf.compat.v1.get_variable("w", initializer=np.float32(3.0), use_resource=False)
        y = tf.identity(x * weight + 1.0, name="y")
        session.run(tf.compat.v1.global_variables_initializer())
        x_info = meta_graph_pb2.TensorInfo(name=x.name, dtype=x.dtype.as_datatype_enum)
        x_info.tensor_shape.unknown_rank = True
        signature = tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
            {"x": x_info}, {"y": tf.compat.v1.saved_model.utils.build_tensor_info(y)},
            "tensorflow/serving/predict")
        builder = tf.compat.v1.saved_model.Builder(str(directory))
        builder.add_meta_graph_and_variables(session, ["serve"],
                                             signature_def_map={"serving_default": signature})
        builder.save()
    return directory
