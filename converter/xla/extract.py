"""Cut a segment out of the flat graph as a function of its boundary inputs."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.python.eager import wrap_function

from converter.graph.inline import FlatGraph
from converter.graph.names import is_control_input, op_name
from converter.xla.segment import Segment

# Producers whose outputs have the same shape on every call: weights.
_FIXED_SHAPE_PRODUCERS = frozenset({"ReadVariableOp", "Const"})


@dataclasses.dataclass(frozen=True)
class SegmentGraph:
    """A segment as a stand-alone GraphDef plus what binds it to the flat graph."""

    segment: Segment
    graph_def: graph_pb2.GraphDef
    input_specs: tuple[tf.TensorSpec, ...]
    output_dtypes: tuple[tf.DType, ...]
    shape_inputs: tuple[int, ...]
    """Positions of the inputs whose shapes select an engine (weights excluded)."""
    fingerprint: str
    """A digest of the segment's nodes and boundary: part of every engine key."""

    def native_function(self) -> Any:
        """The segment as a plain (uncompiled) ConcreteFunction of its inputs."""
        return self.function_of(self.graph_def, self.segment.outputs)

    def function_of(self, graph_def: graph_pb2.GraphDef, outputs: Sequence[str]) -> Any:
        """A ConcreteFunction of `graph_def` (this segment or a rewrite of it)."""
        return wrap_function.function_from_graph_def(
            graph_def,
            [_placeholder(i) + ":0" for i in range(len(self.input_specs))],
            list(outputs),
        )


def _placeholder(position: int) -> str:
    return f"tftrt_segment_input_{position}"


def extract_segment(flat: FlatGraph, segment: Segment) -> SegmentGraph:
    """The segment's nodes, fed by one Placeholder per boundary input."""
    graph_def = graph_pb2.GraphDef()
    graph_def.versions.CopyFrom(flat.graph_def.versions)
    graph_def.library.CopyFrom(flat.graph_def.library)
    specs = []
    for position, name in enumerate(segment.inputs):
        info = flat.tensors[name]
        placeholder = graph_def.node.add(name=_placeholder(position), op="Placeholder")
        placeholder.attr["dtype"].type = info.dtype.as_datatype_enum
        placeholder.attr["shape"].shape.CopyFrom(info.shape.as_proto())
        specs.append(tf.TensorSpec(info.shape, info.dtype, name=f"input_{position}"))
    renamed = {name: _placeholder(i) + ":0" for i, name in enumerate(segment.inputs)}
    members = set(segment.nodes)
    originals = {n.name: n for n in flat.graph_def.node}
    for name in segment.nodes:
        node = graph_def.node.add()
        node.CopyFrom(originals[name])
        node.ClearField("input")
        for graph_input in originals[name].input:
            producer = op_name(graph_input)
            if producer in members:
                node.input.append(graph_input)
            elif not is_control_input(graph_input):
                full = graph_input if ":" in graph_input else f"{graph_input}:0"
                node.input.append(renamed[full])
        node.ClearField("device")
        node.attr.pop("_class", None)  # colocation with nodes left outside
        # TF would lower a functional If/While to Switch/Merge, which XLA refuses.
        node.attr.pop("_lower_using_switch_merge", None)
    shape_inputs = tuple(
        i for i, name in enumerate(segment.inputs)
        if flat.op_types[op_name(name)] not in _FIXED_SHAPE_PRODUCERS
        and op_name(name) not in flat.weights
    )
    digest = hashlib.sha256()
    for node in graph_def.node:
        digest.update(node.SerializeToString(deterministic=True))
    return SegmentGraph(
        segment=segment,
        graph_def=graph_def,
        input_specs=tuple(specs),
        output_dtypes=tuple(flat.tensors[name].dtype for name in segment.outputs),
        shape_inputs=shape_inputs,
        fingerprint=digest.hexdigest()[:16],
    )
