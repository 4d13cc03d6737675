"""Put the segments back: one call node per segment in place of its nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tensorflow.core.framework import attr_value_pb2, graph_pb2

from converter.graph.inline import FlatGraph
from converter.graph.names import is_control_input, op_name, tensor_name
from converter.xla.extract import SegmentGraph


def _call_node_name(segment_graph: SegmentGraph) -> str:
    return f"tftrt/{segment_graph.segment.name}"


def _add_library(graph_def: graph_pb2.GraphDef, function: Any) -> str:
    """Add a ConcreteFunction and everything it calls; return its library name."""
    present = {f.signature.name for f in graph_def.library.function}
    nested = function.graph.as_graph_def().library.function
    for function_def in [*nested, function.function_def]:
        if function_def.signature.name not in present:
            graph_def.library.function.add().CopyFrom(function_def)
            present.add(function_def.signature.name)
    return str(function.function_def.signature.name)


def _shape_guards(
    graph_def: graph_pb2.GraphDef, flat: FlatGraph, segment_graph: SegmentGraph
) -> dict[str, str]:
    """EnsureShape after each call output, so the static shapes that a call
    node hides (it has no shape function) still reach the signature."""
    call = _call_node_name(segment_graph)
    renamed = {}
    for index, name in enumerate(segment_graph.segment.outputs):
        info = flat.tensors[name]
        renamed[name] = f"{call}:{index}"
        if info.shape.rank is None:
            continue
        guard = graph_def.node.add(name=f"{call}/shape_{index}", op="EnsureShape")
        guard.input.append(f"{call}:{index}")
        guard.attr["T"].type = info.dtype.as_datatype_enum
        guard.attr["shape"].shape.CopyFrom(info.shape.as_proto())
        renamed[name] = f"{guard.name}:0"
    return renamed


def _call_node(graph_def: graph_pb2.GraphDef, segment_graph: SegmentGraph, function: Any) -> None:
    segment = segment_graph.segment
    node = graph_def.node.add(name=_call_node_name(segment_graph), op="StatefulPartitionedCall")
    node.input.extend(segment.inputs)
    node.input.extend(f"^{name}" for name in segment.control_inputs)
    node.attr["f"].func.name = _add_library(graph_def, function)
    node.attr["Tin"].list.type.extend(s.dtype.as_datatype_enum for s in segment_graph.input_specs)
    node.attr["Tout"].list.type.extend(d.as_datatype_enum for d in segment_graph.output_dtypes)
    for attr in ("config", "config_proto", "executor_type"):
        node.attr[attr].CopyFrom(attr_value_pb2.AttrValue(s=b""))


def replace_segments(
    flat: FlatGraph, calls: Sequence[tuple[SegmentGraph, Any]]
) -> graph_pb2.GraphDef:
    """The flat graph with each segment's nodes replaced by a call to its function."""
    owner: dict[str, str] = {}
    renamed: dict[str, str] = {}
    for segment_graph, _ in calls:
        call = _call_node_name(segment_graph)
        owner.update({name: call for name in segment_graph.segment.nodes})
    graph_def = graph_pb2.GraphDef()
    graph_def.versions.CopyFrom(flat.graph_def.versions)
    graph_def.library.CopyFrom(flat.graph_def.library)
    for segment_graph, function in calls:
        _call_node(graph_def, segment_graph, function)
        renamed.update(_shape_guards(graph_def, flat, segment_graph))
    for original in flat.graph_def.node:
        if original.name in owner:
            continue
        node = graph_def.node.add()
        node.CopyFrom(original)
        node.ClearField("input")
        control: dict[str, None] = {}
        for graph_input in original.input:
            producer = op_name(graph_input)
            if is_control_input(graph_input):
                control[f"^{owner.get(producer, producer)}"] = None
            else:
                node.input.append(renamed.get(tensor_name(graph_input), graph_input))
        node.input.extend(control)
    return graph_def
