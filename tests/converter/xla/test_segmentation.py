"""Segmentation as TF-TRT does it, on real TensorFlow graphs."""

from __future__ import annotations

import pathlib

import tensorflow as tf
from tensorflow.core.framework import graph_pb2

import converter as trt
from converter.graph.names import op_name
from converter.xla.segment import find_segments, topological_order
from converter.xla.support import SupportTable


def _graph() -> tuple[graph_pb2.GraphDef, dict[str, str]]:
    """x -> a -> b -> c, and a -> n -> c, where n may not be compiled."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        a = tf.nn.relu(x * 2.0, name="a")
        b = tf.tanh(a + 1.0, name="b")
        n = tf.identity(a, name="n")
        tf.add(tf.sigmoid(b), n, name="c")
    graph_def = graph.as_graph_def()
    return graph_def, {node.name: node.op for node in graph_def.node}


def test_never_creates_a_cycle() -> None:
    graph_def, op_types = _graph()
    excluded = {"x": "input", "n": "pretend it has no kernel"}
    result = find_segments(graph_def, op_types, excluded, 1, ["c:0"])
    owner = {node: s.index for s in result.segments for node in s.nodes}
    # a -> n -> c leaves the segment and comes back: a and c may not share one.
    assert owner["a"] != owner["c"]
    for segment in result.segments:
        outside_inputs = {op_name(name) for name in segment.inputs}
        assert not outside_inputs & set(segment.nodes)


def test_small_segments_stay_native_with_a_reason() -> None:
    graph_def, op_types = _graph()
    excluded = {"x": "input"}
    result = find_segments(graph_def, op_types, excluded, 50, ["c:0"])
    assert result.segments == ()
    assert "below minimum_segment_size=50" in result.native["a"]
    everything = find_segments(graph_def, op_types, excluded, -1, ["c:0"])
    assert everything.segments == () and "converts nothing" in everything.native["a"]


def test_topological_order_puts_inputs_first() -> None:
    graph_def, _ = _graph()
    order = topological_order(graph_def)
    position = {name: i for i, name in enumerate(order)}
    for node in graph_def.node:
        for graph_input in node.input:
            assert position[op_name(graph_input)] < position[node.name]


def test_support_comes_from_the_xla_kernel_registry() -> None:
    table = SupportTable("XLA_CPU_JIT")
    assert table.compiles("MatMul") and table.compiles("Conv2D")
    assert not table.compiles("StringToHashBucketFast")
    assert not table.compiles("LookupTableFindV2")


def test_summary_lists_segments_native_ops_and_engines(mlp_dir: pathlib.Path) -> None:
    converter = trt.Converter(mlp_dir, conversion_params=trt.ConversionParams(
        maximum_cached_engines=1))
    converter.convert()
    before = converter.summary()
    assert "segment_0" in before and "No engines prebuilt" in before
    assert "a frozen weight: enters engines as an argument" in before
    converter.build(lambda: iter([{"x": tf.ones([4, 16])}] * 2 + [{"x": tf.ones([2, 16])}]))
    after = converter.summary()
    assert "engine [4x16] FP32" in after and "used by 2 input(s)" in after
    assert "[2x16]" not in after, "maximum_cached_engines=1 builds only the most frequent"
    (engine,) = converter.report().segments[0].engines
    assert engine.native_ms > 0 and engine.engine_ms > 0 and engine.reason


def test_nothing_to_compile_saves_the_model_unchanged(tmp_path: pathlib.Path) -> None:
    class Strings(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="s")])
        def serve(self, s: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"upper": tf.strings.upper(tf.strings.strip(s))}

    module = Strings()
    tf.saved_model.save(module, str(tmp_path / "in"), signatures={"serving_default": module.serve})
    converter = trt.Converter(tmp_path / "in")
    converter.convert()
    assert converter.report().nothing_to_compile
    assert "Nothing to compile" in converter.summary()
    converter.save(tmp_path / "out")
    assert ((tmp_path / "out" / "saved_model.pb").read_bytes()
            == (tmp_path / "in" / "saved_model.pb").read_bytes())
    assert (tmp_path / "out" / "assets.extra" / "tftrt" / "conversion.json").is_file()
