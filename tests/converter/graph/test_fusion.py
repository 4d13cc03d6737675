"""Folding frozen graphs for TF's fusions: what the Session runs, and the same outputs."""

from __future__ import annotations

import collections
import pathlib
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from converter.graph.fold import fold_for_fusion
from converter.graph.freeze import FREEZE_LIMIT_BYTES, freeze
from converter.graph.inline import flatten_signature, function_from_flat
from converter.params import TOLERANCE, TrtPrecisionMode
from converter.savedmodel.loading import load_signature, read_meta_graph
from converter.savedmodel.saving import write_signatures
from converter.serving.measuring import scaled_error
from converter.tf1.frozen_export import freeze_session_graph, write_frozen_export
from tests.support.partition_ops import partition_ops
from tests.support.session_run import session_outputs

IMAGE = (2, 16, 16, 3)
FP32 = TOLERANCE[TrtPrecisionMode.FP32]


def _keras_cnn(directory: pathlib.Path) -> pathlib.Path:
    """Conv2D+BN+ReLU, depthwise+BN+ReLU6, ZeroPadding2D before a strided conv,
    Dense+BN+ReLU, Dense. Batch norms carry trained-looking statistics, except the
    last, which keeps Keras's initial ones (a zero shift, as in keras.applications
    with weights=None)."""
    import keras

    keras.utils.set_random_seed(3)
    image = keras.Input(IMAGE[1:], name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(image)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(x))
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="valid")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(12)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    model = keras.Model(image, keras.layers.Dense(4, name="scores")(x))
    rng = np.random.default_rng(4)
    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms[:-1]:
        n = layer.gamma.shape[0]
        layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n),
                           rng.normal(0, 0.3, n), rng.uniform(0.5, 2.0, n)])
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return directory


def _frozen_export(model_dir: pathlib.Path, target: pathlib.Path, fuse: bool) -> pathlib.Path:
    loaded = load_signature(model_dir)
    frozen = freeze(flatten_signature(loaded.function), set(), FREEZE_LIMIT_BYTES, fuse=fuse)
    function = function_from_flat(frozen.flat, frozen.flat.graph_def, loaded.function)
    write_signatures(loaded, {loaded.key: function}, target)
    return target


@pytest.fixture(scope="module")
def cnn_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    root = tmp_path_factory.mktemp("fusion")
    original = _keras_cnn(root / "original")
    return {"original": original,
            "frozen": _frozen_export(original, root / "frozen", fuse=False),
            "fused": _frozen_export(original, root / "fused", fuse=True)}


def _fused(counts: collections.Counter[str]) -> int:
    return sum(n for op, n in counts.items() if "[" in op)


# What the Session runs for the fused CNN: every convolution and matmul with its
# bias and activation in one op; without oneDNN the remapper fuses no depthwise
# convolution (TF's remapper needs oneDNN for it).
_FUSED_WITHOUT_ONEDNN = {
    "_FusedConv2D[BiasAdd,Relu]": 2, "DepthwiseConv2dNative": 1, "BiasAdd": 1, "Relu6": 1,
    "_FusedMatMul[BiasAdd,Relu]": 1, "_FusedMatMul[BiasAdd]": 1, "Mean": 1}
_FUSED_WITH_ONEDNN = {
    "_MklNativeFusedConv2D[BiasAdd,Relu]": 2,
    "_MklNativeFusedDepthwiseConv2dNative[BiasAdd,Relu6]": 1,
    "_MklNativeFusedMatMul[BiasAdd,Relu]": 1, "_MklNativeFusedMatMul[BiasAdd]": 1, "Mean": 1}


@pytest.mark.parametrize(("onednn", "expected"), [(False, _FUSED_WITHOUT_ONEDNN),
                                                  (True, _FUSED_WITH_ONEDNN)])
def test_the_session_fuses_every_contraction_with_its_bias_and_activation(
        cnn_exports: dict[str, pathlib.Path], onednn: bool, expected: dict[str, int]) -> None:
    fused = partition_ops(cnn_exports["fused"], IMAGE, onednn)
    frozen = partition_ops(cnn_exports["frozen"], IMAGE, onednn)
    assert dict(fused) == expected
    # Frozen alone leaves batch norm's Mul/AddV2 where the remapper needs a BiasAdd.
    assert _fused(frozen) < _fused(fused)
    assert frozen["Mul"] + frozen["AddV2"] > 0


def test_fused_outputs_equal_the_originals(cnn_exports: dict[str, pathlib.Path]) -> None:
    feeds = [{"image": np.random.default_rng(seed).standard_normal(IMAGE).astype(np.float32)}
             for seed in range(3)]
    want = session_outputs(cnn_exports["original"], feeds)
    got = session_outputs(cnn_exports["fused"], feeds)
    for mine, theirs in zip(got, want, strict=True):
        assert sorted(mine) == sorted(theirs) == ["output_0"]
        assert scaled_error([mine["output_0"]], [theirs["output_0"]]) < FP32 / 10


def _keras_swish(directory: pathlib.Path) -> pathlib.Path:
    """EfficientNet's activations: Conv2D+BN+swish, then depthwise+BN+swish."""
    import keras

    keras.utils.set_random_seed(8)
    image = keras.Input(IMAGE[1:], name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(image)
    x = keras.layers.Activation("swish")(keras.layers.BatchNormalization()(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = keras.layers.Activation("swish")(keras.layers.BatchNormalization()(x))
    keras.Model(image, keras.layers.GlobalAveragePooling2D()(x)).export(
        str(directory), format="tf_saved_model", verbose=False)
    return directory


def test_keras_swish_fuses_into_its_convolution(tmp_path: pathlib.Path) -> None:
    original = _keras_swish(tmp_path / "original")
    fused = _frozen_export(original, tmp_path / "fused", fuse=True)
    assert dict(partition_ops(fused, IMAGE, onednn=True)) == {
        "_MklNativeFusedConv2D[BiasAdd,_MklSwish]": 1,
        # TF's remapper fuses no swish into a depthwise convolution: it stays one op.
        "_MklNativeFusedDepthwiseConv2dNative[BiasAdd]": 1, "_MklSwish": 1, "Mean": 1}
    feeds = [{"image": np.random.default_rng(9).standard_normal(IMAGE).astype(np.float32)}]
    want, got = session_outputs(original, feeds), session_outputs(fused, feeds)
    assert scaled_error([got[0]["output_0"]], [want[0]["output_0"]]) < FP32 / 10


# Each rewrite on a graph built for it: structure after, and the same values.

def _graph(build: Callable[[tf.Tensor], tf.Tensor],
           shape: tuple[int | None, ...] = (2, 9, 9, 4)) -> graph_pb2.GraphDef:
    """A graph `y = build(x)` with float32 constant weights."""
    with tf.Graph().as_default() as graph:
        x = tf.compat.v1.placeholder(tf.float32, shape, name="x")
        tf.identity(build(x), name="y")
    return graph.as_graph_def()


def _run(graph_def: graph_pb2.GraphDef, x: np.ndarray) -> np.ndarray:
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return np.asarray(session.run("y:0", {"x:0": x}))


def _folded(graph_def: graph_pb2.GraphDef, shape: tuple[int, ...] = (2, 9, 9, 4),
            ) -> tuple[graph_pb2.GraphDef, collections.Counter[str]]:
    """The folded graph and its op counts, its output checked against the input's."""
    folded = fold_for_fusion(graph_def, {"x", "y"})
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    want, got = _run(graph_def, x), _run(folded, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    return folded, collections.Counter(n.op for n in folded.node if n.op != "Const")


def _constant(*shape: int, seed: int = 0) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).uniform(0.5, 1.5, shape).astype(np.float32))


def test_a_batch_norm_after_a_conv2d_folds_into_its_filter_and_one_bias_add() -> None:
    def build(x: tf.Tensor) -> tf.Tensor:
        conv = tf.nn.conv2d(x, _constant(3, 3, 4, 6), 1, "SAME")
        # Keras 3's decomposed batch norm, on constants as freezing leaves them.
        scale = tf.math.rsqrt(_constant(6, seed=1) + 1e-3) * _constant(6, seed=2)
        shift = _constant(6, seed=3) - _constant(6, seed=4) * scale
        return tf.nn.relu6(conv * scale + tf.reshape(shift, (1, 1, 1, 6)))

    _, ops = _folded(_graph(build))
    assert ops == {"Placeholder": 1, "Conv2D": 1, "BiasAdd": 1, "Relu6": 1, "Identity": 1}


def test_a_depthwise_scale_and_a_sub_fold_channel_by_channel() -> None:
    def build(x: tf.Tensor) -> tf.Tensor:  # channel multiplier 2: 8 output channels
        conv = tf.nn.depthwise_conv2d(x, _constant(3, 3, 4, 2), [1, 1, 1, 1], "VALID")
        return tf.nn.relu(conv * _constant(8, seed=1) - _constant(8, seed=2))

    _, ops = _folded(_graph(build))
    assert ops == {"Placeholder": 1, "DepthwiseConv2dNative": 1, "BiasAdd": 1, "Relu": 1,
                   "Identity": 1}


def test_a_matmul_bias_scale_and_shift_merge_into_one_bias_add() -> None:
    def build(x: tf.Tensor) -> tf.Tensor:  # transposed weights; the shift comes first
        hidden = tf.nn.bias_add(tf.matmul(x, _constant(5, 7), transpose_b=True),
                                _constant(5, seed=1))
        return tf.nn.relu(_constant(5, seed=3) + hidden * _constant(5, seed=2))

    _, ops = _folded(_graph(build, (3, 7)), (3, 7))
    assert ops == {"Placeholder": 1, "MatMul": 1, "BiasAdd": 1, "Relu": 1, "Identity": 1}


def test_what_only_passes_values_through_is_bypassed() -> None:
    def build(x: tf.Tensor) -> tf.Tensor:  # Keras's swish, under tf.custom_gradient
        hidden = tf.nn.bias_add(tf.nn.conv2d(x, _constant(3, 3, 4, 6), 1, "SAME"),
                                _constant(6, seed=1))
        one = tf.constant(1.0)
        swish = hidden * tf.sigmoid(one * hidden)
        passed, _, _ = tf.raw_ops.IdentityN(input=[swish, hidden, one])
        return passed * tf.constant(2.0) + hidden * tf.ones([6])  # these multiply

    _, ops = _folded(_graph(build))
    assert ops == {"Placeholder": 1, "Conv2D": 1, "BiasAdd": 1, "Sigmoid": 1, "Mul": 3,
                   "AddV2": 1, "Identity": 1}


def test_a_zero_spatial_pad_merges_into_a_valid_conv2d() -> None:
    def build(x: tf.Tensor) -> tf.Tensor:
        padded = tf.pad(x, [[0, 0], [1, 2], [0, 1], [0, 0]])
        return tf.nn.conv2d(padded, _constant(3, 3, 4, 2), 2, "VALID")

    folded, ops = _folded(_graph(build))
    assert ops == {"Placeholder": 1, "Conv2D": 1, "Identity": 1}
    (conv,) = [n for n in folded.node if n.op == "Conv2D"]
    assert conv.attr["padding"].s == b"EXPLICIT"
    assert list(conv.attr["explicit_paddings"].list.i) == [0, 0, 1, 2, 0, 1, 0, 0]


@pytest.mark.parametrize("depthwise", [False, True])
def test_a_pad_that_is_same_padding_becomes_same_padding(depthwise: bool) -> None:
    def build(x: tf.Tensor) -> tf.Tensor:  # Keras's correct_pad before a strided 3x3
        padded = tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])
        if depthwise:
            return tf.nn.depthwise_conv2d(padded, _constant(3, 3, 4, 2), [1, 2, 2, 1],
                                          "VALID")
        return tf.nn.conv2d(padded, _constant(3, 3, 4, 2), 2, "VALID")

    even = (2, 8, 8, 4)
    folded, ops = _folded(_graph(build, even), even)
    assert "Pad" not in ops
    (conv,) = [n for n in folded.node if n.op in ("Conv2D", "DepthwiseConv2dNative")]
    assert conv.attr["padding"].s == b"SAME"
    # Over an odd size SAME pads one each side: the Pad stays (or goes into a Conv2D as
    # explicit padding), and so does an unknown size.
    odd_or_unknown: tuple[tuple[int | None, ...], ...] = ((2, 9, 9, 4), (2, None, None, 4))
    for shape in odd_or_unknown:
        folded, ops = _folded(_graph(build, shape), (2, 9, 9, 4))
        assert ops["Pad"] == (1 if depthwise else 0)
        assert all(n.attr["padding"].s != b"SAME" for n in folded.node if "Conv" in n.op)


def test_a_reshape_computed_from_the_batch_size_gets_a_constant_shape() -> None:
    def build(x: tf.Tensor) -> tf.Tensor:  # Keras's Reshape((1, 1, C)) after a squeeze
        squeezed = tf.reduce_mean(x, [1, 2])
        gate = tf.reshape(squeezed, tf.stack([tf.shape(squeezed)[0], 1, 1, 4]))
        # Two sizes unknown: shape inference cannot give it a constant shape.
        flat = tf.reshape(x, tf.stack([tf.shape(x)[0], tf.shape(x)[1], -1]))
        return x * tf.sigmoid(gate) + tf.reduce_sum(flat) * 0.0

    any_batch = (None, None, None, 4)
    folded, ops = _folded(_graph(build, any_batch))
    assert ops["Reshape"] == 2 and ops["Pack"] == 1 and ops["StridedSlice"] == 2
    shape = {n.name: tf.make_ndarray(n.attr["value"].tensor).tolist() for n in folded.node
             if n.op == "Const"}
    gate = next(n for n in folded.node if n.op == "Reshape" and n.input[1] in shape)
    assert shape[gate.input[1]] == [-1, 1, 1, 4]
    # Any batch size runs it.
    x = np.random.default_rng(6).standard_normal((3, 5, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(_run(folded, x), _run(_graph(build, any_batch), x), rtol=1e-6)


def test_what_cannot_fold_stays_as_it_was() -> None:
    def build(x: tf.Tensor) -> tf.Tensor:
        weights = _constant(1, 1, 4, 4)
        shared = tf.nn.conv2d(x, weights, 1, "SAME") * _constant(4, seed=1)
        other = tf.nn.conv2d(x, weights, 1, "SAME")  # shares the filter: it cannot scale
        flipped = _constant(4, seed=2) - other  # c - x is no bias
        # A depthwise convolution keeps a Pad that is not SAME's (oneDNN's Grappler
        # aborts on EXPLICIT padding for it).
        padded = tf.nn.depthwise_conv2d(tf.pad(x, [[0, 0], [2, 0], [2, 0], [0, 0]]),
                                        _constant(3, 3, 4, 1), [1, 1, 1, 1], "VALID")
        return shared + flipped + padded

    _, ops = _folded(_graph(build))
    assert ops["Mul"] == 1 and ops["Sub"] == 1 and ops["Pad"] == 1 and ops["Conv2D"] == 2


def test_a_zero_bias_stays_for_the_remapper_to_fuse() -> None:
    def build(x: tf.Tensor) -> tf.Tensor:
        conv = tf.nn.conv2d(x, _constant(3, 3, 4, 6), 1, "SAME")
        return tf.nn.relu(conv * _constant(6, seed=1) + tf.constant(np.zeros(6, np.float32)))

    folded, ops = _folded(_graph(build))
    assert ops == {"Placeholder": 1, "Conv2D": 1, "BiasAdd": 1, "Relu": 1, "Identity": 1}
    (bias_add,) = [n for n in folded.node if n.op == "BiasAdd"]
    bias = tf.make_ndarray(next(n for n in folded.node if n.name == bias_add.input[1])
                           .attr["value"].tensor)
    assert bias.all()  # Grappler would drop a BiasAdd of zeros, and fuse nothing


def _tf1_conv_export(directory: pathlib.Path) -> pathlib.Path:
    """A TF1 builder export: conv, then a batch norm on variables, then ReLU."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        rng = np.random.default_rng(6)
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        weights = tf.compat.v1.get_variable(
            "w", initializer=rng.standard_normal((3, 3, 3, 5)).astype(np.float32))
        gamma, beta, mean, variance = (tf.compat.v1.get_variable(
            name, initializer=rng.uniform(0.5, 1.5, 5).astype(np.float32))
            for name in ("gamma", "beta", "mean", "variance"))
        conv = tf.nn.conv2d(x, weights, 1, "SAME")
        y = tf.nn.relu(tf.nn.batch_normalization(conv, mean, variance, beta, gamma, 1e-3),
                       name="y")
        session.run(tf.compat.v1.global_variables_initializer())
        signature = tf.compat.v1.saved_model.signature_def_utils.predict_signature_def(
            {"x": x}, {"y": y})
        builder = tf.compat.v1.saved_model.Builder(str(directory))
        builder.add_meta_graph_and_variables(session, ["serve"],
                                             signature_def_map={"serving_default": signature})
        builder.save()
    return directory


def test_the_tf1_path_folds_the_frozen_session_graph(tmp_path: pathlib.Path) -> None:
    original = _tf1_conv_export(tmp_path / "original")
    proto, meta_graph = read_meta_graph(original, ("serve",))
    frozen = freeze_session_graph(original, ("serve",), proto, meta_graph)
    assert not isinstance(frozen, str)
    write_frozen_export(frozen, meta_graph, ("serve",), original, tmp_path / "fused")
    assert dict(partition_ops(tmp_path / "fused", (1, 8, 8, 3), onednn=False)) == {
        "_FusedConv2D[BiasAdd,Relu]": 1}
    feeds = [{"x": np.random.default_rng(7).standard_normal((2, 8, 8, 3)).astype(np.float32)}]
    want, got = session_outputs(original, feeds), session_outputs(tmp_path / "fused", feeds)
    assert scaled_error([got[0]["y"]], [want[0]["y"]]) < FP32 / 10
