"""GraphDef names read one way: data and control inputs, tensor names."""

from __future__ import annotations

import tensorflow as tf

from converter.graph.names import is_control_input, op_name, tensor_name


def test_names_of_a_real_graphs_inputs() -> None:
    graph = tf.Graph()
    with graph.as_default():
        values, index = tf.unique(tf.constant([1, 1, 2], name="c"), name="u")
        with tf.control_dependencies([tf.constant(0, name="k")]):
            tf.identity(index, name="out")
    (out,) = [n for n in graph.as_graph_def().node if n.name == "out"]
    assert list(out.input) == ["u:1", "^k"]
    assert [op_name(i) for i in out.input] == ["u", "k"]
    assert [is_control_input(i) for i in out.input] == [False, True]
    assert tensor_name("u:1") == "u:1" == index.name
    assert tensor_name("c") == "c:0" == graph.get_tensor_by_name("c:0").name
    assert op_name(values.name) == "u"
