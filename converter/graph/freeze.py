"""Freeze read-only variables of a flat graph into constants.

While weights are variables, TF Serving's Grappler cannot fold Keras 3's
decomposed batch norm into the convolution weights, and oneDNN or cuDNN cannot
fuse the layers (DESIGN fact 14). TF-TRT froze the graph before building
engines too. A variable that some signature writes stays a variable, as does
every variable of a model whose weights would bring the GraphDef near
protobuf's 2 GB limit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from converter.graph.inline import FlatGraph

FREEZE_LIMIT_BYTES = 1 << 30
"""Most bytes of weights frozen into one model's graphs (1 GiB). Protobuf refuses
messages over 2 GB; past this the model keeps its variables."""

# Ops that only pass a handle along: the variable is used wherever they lead.
_HANDLE_FORWARDERS = frozenset({"Identity"})


@dataclasses.dataclass(frozen=True)
class Freezing:
    """A flat graph with its read-only variables as constants."""

    flat: FlatGraph
    frozen: int
    """How many variables became constants."""
    frozen_bytes: int
    kept: dict[str, str]
    """Capture placeholder -> why its variable stays a variable."""
    weights: frozenset[str]
    """The Const nodes that were variable reads."""


def _consumers(graph_def: graph_pb2.GraphDef) -> dict[str, list[Any]]:
    consumers: dict[str, list[Any]] = {n.name: [] for n in graph_def.node}
    for node in graph_def.node:
        for graph_input in node.input:
            if not graph_input.startswith("^"):
                consumers[graph_input.split(":")[0]].append(node)
    return consumers


def _uses(capture: str, consumers: dict[str, list[Any]]) -> tuple[list[Any], list[str]]:
    """The ReadVariableOps reached from a capture, and the other ops that take it."""
    reads, others, stack = [], [], [capture]
    while stack:
        for node in consumers[stack.pop()]:
            if node.op == "ReadVariableOp":
                reads.append(node)
            elif node.op in _HANDLE_FORWARDERS:
                stack.append(node.name)
            else:
                others.append(node.op)
    return reads, others


def written_variables(flat: FlatGraph) -> set[int]:
    """`id()` of each captured resource that the graph hands to anything but a read
    (an assignment, a scatter, a call that may write it)."""
    consumers = _consumers(flat.graph_def)
    return {id(external) for name, external in flat.captures.items()
            if external.dtype == tf.resource and _uses(name, consumers)[1]}


def _value(external: Any, dtype: tf.DType) -> tf.Tensor:
    return tf.raw_ops.ReadVariableOp(resource=external, dtype=dtype)


def freeze(flat: FlatGraph, written: Iterable[int], budget: int) -> Freezing:
    """Replace the reads of every captured variable that nothing writes (`written`:
    ids over all signatures) by constants, while the weights fit `budget` bytes."""
    consumers = _consumers(flat.graph_def)
    written_ids = set(written)
    kept: dict[str, str] = {}
    values: dict[str, tf.Tensor] = {}
    chains: set[str] = set()
    total = 0
    for name, external in flat.captures.items():
        if external.dtype != tf.resource:
            continue
        reads, others = _uses(name, consumers)
        if not reads:
            continue
        if others:
            kept[name] = (f"this signature hands it to {', '.join(sorted(set(others)))} "
                          "(which may write it; freezing rewrites only plain reads)")
            continue
        if id(external) in written_ids:
            kept[name] = "another signature writes it"
            continue
        value = _value(external, tf.as_dtype(reads[0].attr["dtype"].type))
        size = int(value.numpy().nbytes) if value.dtype != tf.string else 0
        if total + size > budget:
            kept[name] = (f"the frozen weights would pass {budget / 2**20:.0f} MiB "
                          "(protobuf's 2 GB limit is near)")
            continue
        total += size
        for read in reads:
            values[read.name] = value
        chains.add(name)
    graph_def = graph_pb2.GraphDef()
    graph_def.versions.CopyFrom(flat.graph_def.versions)
    graph_def.library.CopyFrom(flat.graph_def.library)
    removed = _handle_chain(chains, consumers)
    for original in flat.graph_def.node:
        if original.name in removed:
            continue
        node = graph_def.node.add()
        if original.name in values:
            node.name, node.op = original.name, "Const"
            value = values[original.name]
            node.attr["dtype"].type = value.dtype.as_datatype_enum
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value.numpy()))
            # Control inputs of the read (ordering after an init op) still hold.
            node.input.extend(i for i in original.input if i.startswith("^"))
        else:
            node.CopyFrom(original)
            node.ClearField("input")
            node.input.extend(i for i in original.input
                              if i.lstrip("^").split(":")[0] not in removed)
    frozen_flat = dataclasses.replace(
        flat,
        graph_def=graph_def,
        input_names=[n for n in flat.input_names if n.split(":")[0] not in removed],
        captures={k: v for k, v in flat.captures.items() if k not in chains},
        op_types={**{k: v for k, v in flat.op_types.items() if k not in removed},
                  **{k: "Const" for k in values}},
        tensors={k: v for k, v in flat.tensors.items() if k.split(":")[0] not in removed},
    )
    return Freezing(flat=frozen_flat, frozen=len(chains), frozen_bytes=total, kept=kept,
                    weights=frozenset(values))


def _handle_chain(captures: set[str], consumers: dict[str, list[Any]]) -> set[str]:
    """The capture placeholders and the Identity nodes that only forwarded them."""
    chain, stack = set(), list(captures)
    while stack:
        name = stack.pop()
        chain.add(name)
        stack.extend(n.name for n in consumers[name] if n.op in _HANDLE_FORWARDERS)
    return chain
