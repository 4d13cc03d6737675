"""Cluster compilable nodes into segments, as TF-TRT's segmenter does.

Union-find over candidate nodes: an edge between two candidates is contracted
unless another path joins them, since contracting it would create a cycle.
Clusters with fewer compute ops than `minimum_segment_size` stay native.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from tensorflow.core.framework import graph_pb2

from converter.graph.names import is_control_input, op_name, tensor_name
from converter.xla.support import count_compute_ops


@dataclasses.dataclass(frozen=True)
class Segment:
    """A connected set of compilable nodes with its boundary."""

    index: int
    nodes: tuple[str, ...]
    """Member node names, in topological order."""
    inputs: tuple[str, ...]
    """Tensors produced outside and consumed inside, in first-use order."""
    outputs: tuple[str, ...]
    """Tensors produced inside and consumed outside, in first-use order."""
    control_inputs: tuple[str, ...]
    """Outside nodes that members wait for."""

    @property
    def name(self) -> str:
        """The segment's name in reports and in the converted graph."""
        return f"segment_{self.index}"


def forward_producers(graph_def: graph_pb2.GraphDef) -> dict[str, set[str]]:
    """Node -> the nodes it consumes from, without TF1 loops' NextIteration back edges."""
    back = {n.name for n in graph_def.node if n.op == "NextIteration"}
    return {
        node.name: {op_name(i) for i in node.input} - (back if node.op == "Merge" else set())
        for node in graph_def.node
    }


def topological_order(graph_def: graph_pb2.GraphDef) -> list[str]:
    """Node names so that every node follows its inputs (data and control)."""
    consumers: dict[str, list[str]] = {n.name: [] for n in graph_def.node}
    pending: dict[str, int] = {}
    producers_of = forward_producers(graph_def)
    for node in graph_def.node:
        producers = producers_of[node.name]
        pending[node.name] = len(producers)
        for producer in producers:
            consumers[producer].append(node.name)
    ready = [n.name for n in graph_def.node if pending[n.name] == 0]
    order: list[str] = []
    while ready:
        name = ready.pop()
        order.append(name)
        for consumer in consumers[name]:
            pending[consumer] -= 1
            if pending[consumer] == 0:
                ready.append(consumer)
    if len(order) != len(graph_def.node):
        raise ValueError("the flattened graph has a cycle outside functional control flow")
    return order


class _Clusters:
    """Union-find whose roots also keep the contracted graph's edges."""

    def __init__(self, order: Sequence[str], edges: Mapping[str, set[str]]) -> None:
        self._parent = {name: name for name in order}
        self._succ: dict[str, set[str]] = {name: set(edges[name]) for name in order}
        self._pred: dict[str, set[str]] = {name: set() for name in order}
        for name, targets in edges.items():
            for target in targets:
                self._pred[target].add(name)

    def find(self, name: str) -> str:
        root = name
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[name] != root:
            self._parent[name], name = root, self._parent[name]
        return root

    def joined_elsewhere(self, source: str, target: str) -> bool:
        """Whether a path source -> ... -> target exists besides the direct edge."""
        stack = [s for s in self._succ[source] if s != target]
        seen = set(stack)
        while stack:
            current = stack.pop()
            if current == target:
                return True
            for nxt in self._succ[current]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    def merge(self, keep: str, absorb: str) -> None:
        self._parent[absorb] = keep
        for pred in self._pred.pop(absorb):
            self._succ[pred].discard(absorb)
            if pred != keep:
                self._succ[pred].add(keep)
                self._pred[keep].add(pred)
        for succ in self._succ.pop(absorb):
            self._pred[succ].discard(absorb)
            if succ != keep:
                self._pred[succ].add(keep)
                self._succ[keep].add(succ)
        self._succ[keep].discard(keep)
        self._pred[keep].discard(keep)


def _cluster(
    graph_def: graph_pb2.GraphDef, order: Sequence[str], candidates: set[str]
) -> dict[str, list[str]]:
    edges: dict[str, set[str]] = {name: set() for name in order}
    for name, producers in forward_producers(graph_def).items():
        for producer in producers:
            edges[producer].add(name)
    clusters = _Clusters(order, edges)
    position = {name: i for i, name in enumerate(order)}
    for name in order:
        if name not in candidates:
            continue
        for consumer in sorted(edges[name], key=position.__getitem__):
            if consumer not in candidates:
                continue
            source, target = clusters.find(name), clusters.find(consumer)
            if source != target and not clusters.joined_elsewhere(source, target):
                clusters.merge(source, target)
    groups: dict[str, list[str]] = {}
    for name in order:
        if name in candidates:
            groups.setdefault(clusters.find(name), []).append(name)
    return groups


def _boundary(
    index: int, members: list[str], graph_def: graph_pb2.GraphDef, output_names: Sequence[str]
) -> Segment:
    inside = set(members)
    nodes = {n.name: n for n in graph_def.node}
    inputs: dict[str, None] = {}
    control_inputs: dict[str, None] = {}
    for name in members:
        for graph_input in nodes[name].input:
            producer = op_name(graph_input)
            if producer in inside:
                continue
            if is_control_input(graph_input):
                control_inputs[producer] = None
            else:
                inputs[tensor_name(graph_input)] = None
    outputs: dict[str, None] = {}
    for node in graph_def.node:
        if node.name in inside:
            continue
        for graph_input in node.input:
            if not is_control_input(graph_input) and op_name(graph_input) in inside:
                outputs[tensor_name(graph_input)] = None
    for name in output_names:
        if op_name(name) in inside:
            outputs[name] = None
    return Segment(
        index=index,
        nodes=tuple(members),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        control_inputs=tuple(control_inputs),
    )


@dataclasses.dataclass(frozen=True)
class Segmentation:
    """The segments, and why every other node stays native."""

    segments: tuple[Segment, ...]
    native: dict[str, str]
    """Node name -> reason it is not in any segment."""


def find_segments(
    graph_def: graph_pb2.GraphDef,
    op_types: Mapping[str, str],
    excluded: Mapping[str, str],
    minimum_segment_size: int,
    output_names: Sequence[str],
) -> Segmentation:
    """Cluster every node not in `excluded` into segments of at least the minimum size."""
    native = dict(excluded)
    if minimum_segment_size == -1:
        native.update(
            {n.name: "minimum_segment_size=-1 converts nothing" for n in graph_def.node
             if n.name not in native}
        )
        return Segmentation(segments=(), native=native)
    order = topological_order(graph_def)
    candidates = {name for name in order if name not in excluded}
    segments: list[Segment] = []
    for members in _cluster(graph_def, order, candidates).values():
        size = count_compute_ops(op_types[m] for m in members)
        if size < minimum_segment_size:
            reason = (
                f"its cluster has {size} compute op(s), below minimum_segment_size="
                f"{minimum_segment_size}"
            )
            native.update({m: reason for m in members})
            continue
        segment = _boundary(len(segments), members, graph_def, output_names)
        if not segment.outputs:
            native.update({m: "its cluster has no outputs used by the signature" for m in members})
            continue
        segments.append(segment)
    return Segmentation(segments=tuple(segments), native=native)
