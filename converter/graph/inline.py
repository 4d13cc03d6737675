"""Flatten a signature's function into one GraphDef with its body inline, and make a
function of such a graph again (capturing the original's variables)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
from tensorflow.python.eager import wrap_function
from tensorflow.python.grappler import tf_optimizer
from tensorflow.python.ops import resource_variable_ops
from tensorflow.python.training import saver
from tensorflow.python.util import nest

from converter.graph.names import op_name


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """Static facts about one tensor of the flat graph."""

    dtype: tf.DType
    shape: tf.TensorShape


@dataclasses.dataclass
class FlatGraph:
    """A signature function as a flat GraphDef, with the names that bind it."""

    graph_def: graph_pb2.GraphDef
    input_names: list[str]
    """Tensor names of the signature inputs, in the function's positional order."""
    output_names: list[str]
    """Tensor names of the signature outputs, in the function's flat order."""
    captures: dict[str, Any]
    """Placeholder node name -> the captured tensor (a variable handle) outside."""
    tensors: dict[str, TensorInfo]
    """Every tensor produced in the graph, by name ("node:index")."""
    op_types: dict[str, str]
    """Node name -> op type."""
    weights: frozenset[str] = frozenset()
    """Placeholders that carry frozen weights (captured constants, `graph.freeze`):
    their shapes never change, so they do not select engines."""

    def outputs_of(self, node: str) -> list[TensorInfo]:
        """The static facts of each output of `node`, in order."""
        infos: list[TensorInfo] = []
        while (info := self.tensors.get(f"{node}:{len(infos)}")) is not None:
            infos.append(info)
        return infos


def _inline_functions(function: Any) -> graph_pb2.GraphDef:
    graph_def = function.graph.as_graph_def()
    # `api_implements` makes Grappler keep a call so it can swap implementations;
    # we want every call inline.
    for library_function in graph_def.library.function:
        library_function.attr.pop("api_implements", None)
    meta_graph = saver.export_meta_graph(graph_def=graph_def, graph=function.graph)
    fetches = meta_graph_pb2.CollectionDef()
    for tensor in function.inputs + function.outputs:
        fetches.node_list.value.append(tensor.name)
    meta_graph.collection_def["train_op"].CopyFrom(fetches)
    config = config_pb2.ConfigProto()
    # Grappler lowers functional If/While to Switch/Merge unless told the graph
    # runs on the single-threaded executor; XLA compiles the functional forms.
    config.experimental.executor_type = "SINGLE_THREADED_EXECUTOR"
    rewrite = config.graph_options.rewrite_options
    rewrite.min_graph_nodes = -1
    rewrite.optimizers.append("function")
    return tf_optimizer.OptimizeGraph(config, meta_graph, graph_id=b"tf_graph")


def _variable_shapes(function: Any) -> dict[str, tuple[tf.DType, tf.TensorShape]]:
    """Capture placeholder name -> (dtype, shape) of the variable behind it."""
    shapes = {}
    for external, internal in function.graph.captures:
        if external.dtype != tf.resource:
            continue
        handle_data = resource_variable_ops.get_eager_safe_handle_data(external)
        if handle_data is not None and handle_data.is_set and len(handle_data.shape_and_type) == 1:
            entry = handle_data.shape_and_type[0]
            shapes[op_name(internal.name)] = (
                tf.as_dtype(entry.dtype), tf.TensorShape(entry.shape)
            )
    return shapes


def _with_variable_reads_as_placeholders(
    graph_def: graph_pb2.GraphDef, variables: dict[str, tuple[tf.DType, tf.TensorShape]]
) -> graph_pb2.GraphDef:
    """A copy in which each variable read is a Placeholder of the variable's shape.

    Captured handles carry no shape in a GraphDef, so shape inference would
    see every weight, and all that follows it, as unknown."""
    nodes = {n.name: n for n in graph_def.node}

    def source(name: str) -> str:
        while nodes[name].op == "Identity" and nodes[name].input:
            name = op_name(nodes[name].input[0])
        return name

    copy = graph_pb2.GraphDef()
    copy.CopyFrom(graph_def)
    for node in copy.node:
        if node.op == "ReadVariableOp" and (found := variables.get(source(node.input[0]))):
            dtype, shape = found
            node.op = "Placeholder"
            del node.input[:]
            node.attr.clear()
            node.attr["dtype"].type = dtype.as_datatype_enum
            node.attr["shape"].shape.CopyFrom(shape.as_proto())
    return copy


def _tensor_infos(graph_def: graph_pb2.GraphDef) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    tensors: dict[str, TensorInfo] = {}
    op_types: dict[str, str] = {}
    for op in graph.get_operations():
        op_types[op.name] = op.type
        for output in op.outputs:
            tensors[output.name] = TensorInfo(dtype=output.dtype, shape=output.shape)
    return tensors, op_types


def flatten_signature(function: Any) -> FlatGraph:
    """Inline every call in `function` (a signature's ConcreteFunction)."""
    graph_def = _inline_functions(function)
    tensors, op_types = _tensor_infos(
        _with_variable_reads_as_placeholders(graph_def, _variable_shapes(function))
    )
    op_types.update({node.name: node.op for node in graph_def.node})
    captures = {
        op_name(internal.name): external for external, internal in function.graph.captures
    }
    return FlatGraph(
        graph_def=graph_def,
        input_names=[t.name for t in function.inputs],
        output_names=[t.name for t in function.outputs],
        captures=captures,
        tensors=tensors,
        op_types=op_types,
    )


def function_from_flat(flat: FlatGraph, graph_def: graph_pb2.GraphDef,
                       original: Any, outputs: Sequence[str] | None = None) -> Any:
    """A ConcreteFunction of `graph_def` that captures the original's variables.

    With `outputs` it returns those tensors (a probe); otherwise it takes the
    place of `original`, with its structured inputs and outputs."""
    function = wrap_function.function_from_graph_def(
        graph_def, flat.input_names, list(outputs or flat.output_names), flat.captures
    )
    if outputs is None:
        function.graph.structured_outputs = nest.pack_sequence_as(
            original.graph.structured_outputs, function.graph.structured_outputs
        )
        function._function_type = original.function_type  # as TF-TRT does
        function.graph.structured_input_signature = original.structured_input_signature
    return function
