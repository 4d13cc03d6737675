"""Freeze read-only variables of a flat graph into constants.

While weights are variables, TF Serving's Grappler cannot fold Keras 3's
decomposed batch norm into the convolution weights, and oneDNN or cuDNN cannot
fuse the layers (DESIGN fact 14). TF-TRT froze the graph before building
engines too. A variable that some signature writes stays a variable, and so do
the weights past `FREEZE_LIMIT_BYTES`, which keeps the saved GraphDef well under
protobuf's 2 GB limit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from converter.graph.fold import fold_for_fusion
from converter.graph.inline import FlatGraph, TensorInfo
from converter.graph.names import is_control_input, op_name

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
    """Bytes of the values frozen here first (not those another signature froze)."""
    kept: dict[str, str]
    """Capture placeholder -> why its variable stays a variable."""
    weights: frozenset[str]
    """The placeholders (captured constants) that were variable reads."""


def _consumers(graph_def: graph_pb2.GraphDef) -> dict[str, list[Any]]:
    consumers: dict[str, list[Any]] = {n.name: [] for n in graph_def.node}
    for node in graph_def.node:
        for graph_input in node.input:
            if not is_control_input(graph_input):
                consumers[op_name(graph_input)].append(node)
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


def freeze(flat: FlatGraph, written: Iterable[int], budget: int,
           values_by_variable: dict[int, tf.Tensor] | None = None,
           fuse: bool = True) -> Freezing:
    """Replace the reads of every captured variable that nothing writes (`written`:
    ids over all signatures) by constants, while the weights fit `budget` bytes;
    with `fuse`, then fold them for TF's fusions (`fold.fold_for_fusion`).

    Each read becomes a placeholder that captures the variable's value as an eager
    constant: saved, it is a constant of the graph TF Serving loads (Grappler folds
    it as it folds a Const node: measured the same speed), while converting holds
    each value once instead of once per graph copy (Const nodes cost ResNet50 about
    0.7 GB per function built from the graph). `values_by_variable` shares the
    values between signatures, so each weight is also saved once."""
    consumers = _consumers(flat.graph_def)
    written_ids = set(written)
    kept: dict[str, str] = {}
    values: dict[str, tf.Tensor] = {}
    alias: dict[str, str] = {}
    cache = values_by_variable if values_by_variable is not None else {}
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
        value = cache.get(id(external))
        size = 0  # a value another signature froze is counted (and saved) once
        if value is None:
            value = _value(external, tf.as_dtype(reads[0].attr["dtype"].type))
            size = value.shape.num_elements() * value.dtype.size if value.dtype != tf.string else 0
        if total + size > budget:
            kept[name] = (f"the frozen weights would pass {budget / 2**20:.0f} MiB "
                          "(protobuf's 2 GB limit is near)")
            continue
        total += size
        cache[id(external)] = value
        # One placeholder per value: a graph maps each captured tensor to one.
        values[reads[0].name] = value
        alias.update((read.name, reads[0].name) for read in reads[1:])
        chains.add(name)
    graph_def = graph_pb2.GraphDef()
    graph_def.versions.CopyFrom(flat.graph_def.versions)
    graph_def.library.CopyFrom(flat.graph_def.library)
    removed = _handle_chain(chains, consumers) | set(alias)

    def rewired(graph_input: str) -> str | None:
        producer = op_name(graph_input)
        if is_control_input(graph_input):
            # Nothing waits on a constant: control edges from frozen reads go.
            return None if producer in removed or producer in values else graph_input
        if producer in alias:  # the same output of the read it aliases
            return alias[producer] + graph_input[len(producer):]
        return graph_input

    for original in flat.graph_def.node:
        if original.name in removed:
            continue
        node = graph_def.node.add()
        if original.name in values:
            # A read-only value needs no ordering: the read's control inputs go.
            node.name, node.op = original.name, "Placeholder"
            value = values[original.name]
            node.attr["dtype"].type = value.dtype.as_datatype_enum
            node.attr["shape"].shape.CopyFrom(value.shape.as_proto())
        else:
            node.CopyFrom(original)
            node.ClearField("input")
            node.input.extend(i for i in map(rewired, original.input) if i is not None)
    frozen_flat = dataclasses.replace(
        flat,
        graph_def=graph_def,
        input_names=[n for n in flat.input_names if op_name(n) not in removed],
        output_names=[rewired(n) or n for n in flat.output_names],
        captures={**{k: v for k, v in flat.captures.items() if k not in chains}, **values},
        op_types={**{k: v for k, v in flat.op_types.items() if k not in removed},
                  **{k: "Placeholder" for k in values}},
        weights=frozenset(values),
        tensors={k: v for k, v in flat.tensors.items() if op_name(k) not in removed},
    )
    if chains and fuse:
        frozen_flat = _fused(frozen_flat)
    return Freezing(flat=frozen_flat, frozen=len(chains), frozen_bytes=total, kept=kept,
                    weights=frozen_flat.weights)


def _fused(flat: FlatGraph) -> FlatGraph:
    """`flat` rewritten by `fold_for_fusion`, so that TF Serving's remapper fuses
    its convolutions and matmuls with their bias and activation."""
    folded = fold_for_fusion(weights_as_constants(flat), {
        op_name(n) for n in [*flat.input_names, *flat.output_names]})
    return with_captured_weights(flat, folded)


def weights_as_constants(flat: FlatGraph) -> graph_pb2.GraphDef:
    """`flat`'s graph with each frozen weight a Const node holding its value: the
    form graph passes (folding, quantization) read weights in."""
    return _captures_inlined(flat, flat.weights)


def _captures_inlined(flat: FlatGraph, names: Iterable[str]) -> graph_pb2.GraphDef:
    """`flat`'s graph with each captured placeholder in `names` a Const node holding
    its captured value."""
    wanted = frozenset(names)
    graph_def = graph_pb2.GraphDef()
    graph_def.CopyFrom(flat.graph_def)
    for node in graph_def.node:
        if node.name in wanted:
            value = flat.captures[node.name]
            node.op = "Const"
            node.attr.clear()
            node.attr["dtype"].type = value.dtype.as_datatype_enum
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value.numpy()))
    return graph_def


def with_captured_weights(flat: FlatGraph, rewritten: graph_pb2.GraphDef) -> FlatGraph:
    """`flat` with its graph replaced by `rewritten` (a pass's output over
    `weights_as_constants(flat)`, which keeps the signature's input and output
    nodes), each weight a placeholder capturing its value again (see `freeze`).

    An unchanged weight captures the very tensor it had, so weights that signatures
    share are still saved once."""
    graph_def = graph_pb2.GraphDef()
    graph_def.CopyFrom(rewritten)
    constants = {n.name for n in flat.graph_def.node if n.op == "Const"}
    values: dict[str, tf.Tensor] = {}
    for node in graph_def.node:
        if node.op != "Const" or node.name in constants:
            continue
        tensor = node.attr["value"].tensor
        original = flat.captures.get(node.name) if node.name in flat.weights else None
        unchanged = original is not None and tf.make_tensor_proto(original.numpy()) == tensor
        values[node.name] = original if unchanged else tf.constant(tf.make_ndarray(tensor))
        node.op = "Placeholder"
        node.attr.clear()
        node.attr["dtype"].type = values[node.name].dtype.as_datatype_enum
        node.attr["shape"].shape.CopyFrom(values[node.name].shape.as_proto())
    names = {node.name: node.op for node in graph_def.node}
    # A rewritten node keeps its name and its output's shape, so only new weights
    # need their facts added.
    tensors = {k: v for k, v in flat.tensors.items() if op_name(k) in names}
    tensors.update((f"{name}:0", TensorInfo(dtype=value.dtype, shape=value.shape))
                   for name, value in values.items())
    return dataclasses.replace(
        flat,
        graph_def=graph_def,
        captures={**{k: v for k, v in flat.captures.items()
                     if k in names and k not in flat.weights}, **values},
        op_types=names,
        weights=frozenset(values),
        tensors=tensors,
    )


def captures_as_constants(flat: FlatGraph) -> graph_pb2.GraphDef | str:
    """`weights_as_constants(flat)` with every other captured value a Const node too,
    so that only the signature's inputs stay placeholders; or why it cannot be (a
    captured variable, which a constant cannot stand for)."""
    variables = sorted(name for name, value in flat.captures.items()
                       if name not in flat.weights and value.dtype == tf.resource)
    if variables:
        return (f"the graph keeps variable(s) {variables[:3]} (written by a signature, or "
                "past the freezing limit), which must stay variables")
    return _captures_inlined(flat, flat.captures)


def signature_inputs(flat: FlatGraph) -> list[str]:
    """`flat`'s input tensors that the signature feeds (the others are captures)."""
    return [name for name in flat.input_names if op_name(name) not in flat.captures]


def with_constant_weights(flat: FlatGraph, rewritten: graph_pb2.GraphDef) -> FlatGraph:
    """`flat` with its graph replaced by `rewritten` (a pass's output over
    `captures_as_constants(flat)`), every weight and captured value left a Const
    node: oneDNN's int8 convolutions refuse a filter that is not a constant."""
    names = {node.name: node.op for node in rewritten.node}
    return dataclasses.replace(
        flat,
        graph_def=rewritten,
        input_names=signature_inputs(flat),
        captures={},
        op_types=names,
        weights=frozenset(),
        tensors={k: v for k, v in flat.tensors.items() if op_name(k) in names},
    )


def _handle_chain(captures: set[str], consumers: dict[str, list[Any]]) -> set[str]:
    """The capture placeholders and the Identity nodes that only forwarded them."""
    chain, stack = set(), list(captures)
    while stack:
        name = stack.pop()
        chain.add(name)
        stack.extend(n.name for n in consumers[name] if n.op in _HANDLE_FORWARDERS)
    return chain
