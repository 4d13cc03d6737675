"""FP16: rewrite a segment to compute in half precision, float32 at its boundary."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, node_def_pb2, op_def_pb2, types_pb2
from tensorflow.python.framework import op_def_registry

from converter.graph.names import is_control_input
from converter.xla.extract import SegmentGraph

_FLOAT = types_pb2.DT_FLOAT
_HALF = types_pb2.DT_HALF
# Attributes whose op definition insists on float32 even when T is half.
_KEEP_FLOAT = {("FusedBatchNorm", "U"), ("FusedBatchNormV2", "U"), ("FusedBatchNormV3", "U")}
_FUNCTIONAL = {"If", "StatelessIf", "While", "StatelessWhile", "PartitionedCall",
               "StatefulPartitionedCall", "Case", "StatelessCase"}


def _attr(node: node_def_pb2.NodeDef, op_def: op_def_pb2.OpDef, name: str) -> object:
    if name in node.attr:
        return node.attr[name]
    return next(a.default_value for a in op_def.attr if a.name == name)


def _arg_dtypes(
    args: list[op_def_pb2.OpDef.ArgDef], node: node_def_pb2.NodeDef, op_def: op_def_pb2.OpDef
) -> list[int]:
    dtypes: list[int] = []
    for arg in args:
        if arg.type_list_attr:
            dtypes.extend(_attr(node, op_def, arg.type_list_attr).list.type)  # type: ignore[attr-defined]
            continue
        dtype = _attr(node, op_def, arg.type_attr).type if arg.type_attr else arg.type  # type: ignore[attr-defined]
        count = _attr(node, op_def, arg.number_attr).i if arg.number_attr else 1  # type: ignore[attr-defined]
        dtypes.extend([dtype] * count)
    return dtypes


def _allows_half(op_def: op_def_pb2.OpDef, attr_name: str) -> bool:
    for attr in op_def.attr:
        if attr.name == attr_name:
            allowed = attr.allowed_values.list.type
            return not allowed or _HALF in allowed
    return False


def _convert_attrs(node: node_def_pb2.NodeDef, op_def: op_def_pb2.OpDef) -> None:
    """Float32 type attributes become half, where the op allows it."""
    for name, value in node.attr.items():
        if (node.op, name) in _KEEP_FLOAT or not _allows_half(op_def, name):
            continue
        if value.type == _FLOAT:
            value.type = _HALF
        elif any(t == _FLOAT for t in value.list.type):
            value.list.type[:] = [_HALF if t == _FLOAT else t for t in value.list.type]
    if node.op == "Const" and node.attr["value"].tensor.dtype == _FLOAT:
        values = tf.make_ndarray(node.attr["value"].tensor).astype(np.float16)
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(values))


def _cast(graph_def: graph_pb2.GraphDef, name: str, source: str, src: int, dst: int) -> str:
    cast = graph_def.node.add(name=name, op="Cast")
    cast.input.append(source)
    cast.attr["SrcT"].type = src
    cast.attr["DstT"].type = dst
    cast.attr["Truncate"].b = False
    return f"{name}:0"


def half_precision(segment_graph: SegmentGraph) -> tuple[graph_pb2.GraphDef, list[str]] | str:
    """The segment in half precision and its float32 output names, or why not."""
    functional = sorted({n.op for n in segment_graph.graph_def.node} & _FUNCTIONAL)
    if functional:
        return f"FP16 not applied: the segment has functional ops {functional}"
    result = graph_pb2.GraphDef()
    result.versions.CopyFrom(segment_graph.graph_def.versions)
    result.library.CopyFrom(segment_graph.graph_def.library)
    dtypes: dict[str, int] = {}
    for original in segment_graph.graph_def.node:
        node = result.node.add()
        node.CopyFrom(original)
        op_def = op_def_registry.get(node.op)
        if node.op != "Placeholder":
            _convert_attrs(node, op_def)
        expected = _arg_dtypes(list(op_def.input_arg), node, op_def)
        data_inputs = [i for i in node.input if not is_control_input(i)]
        for position, (source, want) in enumerate(zip(data_inputs, expected, strict=True)):
            source_name = source if ":" in source else f"{source}:0"
            have = dtypes[source_name]
            if have != want:
                node.input[position] = _cast(
                    result, f"{node.name}/tftrt_cast_{position}", source, have, want
                )
        for index, dtype in enumerate(_arg_dtypes(list(op_def.output_arg), node, op_def)):
            dtypes[f"{node.name}:{index}"] = dtype
    outputs = []
    for index, (name, dtype) in enumerate(
        zip(segment_graph.segment.outputs, segment_graph.output_dtypes, strict=True)
    ):
        want = dtype.as_datatype_enum
        have = dtypes[name]
        outputs.append(
            name if have == want else _cast(result, f"tftrt_output_cast_{index}", name, have, want)
        )
    return result, outputs
