"""Which nodes may go into an engine, read from TensorFlow's own XLA kernel registry."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping

import tensorflow as tf
from tensorflow.core.framework import function_pb2, graph_pb2, node_def_pb2
from tensorflow.python.framework import kernels

from converter.graph.inline import FlatGraph
from converter.graph.names import is_control_input, op_name, tensor_name

# Ops that XLA has kernels for but that must stay outside engines.
_NEVER_COMPILED = {
    "Placeholder": "a signature input or captured variable",
    "NoOp": "control-only",
    "Switch": "TF1 control flow (Switch/Merge) stays native",
    "Merge": "TF1 control flow (Switch/Merge) stays native",
    "Enter": "TF1 control flow (Switch/Merge) stays native",
    "Exit": "TF1 control flow (Switch/Merge) stays native",
    "NextIteration": "TF1 control flow (Switch/Merge) stays native",
    "LoopCond": "TF1 control flow (Switch/Merge) stays native",
}
_UNCOMPILABLE_DTYPES = {
    tf.string: "string tensors do not compile with XLA",
    tf.resource: "touches a resource (variable or table): weights enter engines as arguments",
    tf.variant: "variant tensors (TensorList, datasets) cannot cross an engine boundary",
}
_FUNCTION_ATTRS = ("f", "then_branch", "else_branch", "body", "cond", "branches")


@functools.cache
def _initialise_xla_jit() -> None:
    # XLA registers its JIT kernels on first use; until then the registry lacks them.
    tf.function(lambda x: x + 1, jit_compile=True)(tf.constant(1.0))


@functools.cache
def _has_kernel(op_type: str, device_type: str) -> bool:
    _initialise_xla_jit()
    registered = kernels.get_registered_kernels_for_op(op_type).kernel
    return any(k.device_type == device_type for k in registered)


@dataclasses.dataclass(frozen=True)
class SupportTable:
    """Which op types compile on one XLA device type (TF's kernel registry decides)."""

    device_type: str

    def compiles(self, op_type: str) -> bool:
        """Whether XLA has a kernel for `op_type` on this device type."""
        return _has_kernel(op_type, self.device_type)


def _called_functions(node: node_def_pb2.NodeDef) -> list[str]:
    names = []
    for attr in _FUNCTION_ATTRS:
        if attr in node.attr:
            value = node.attr[attr]
            if value.HasField("func"):
                names.append(value.func.name)
            names.extend(f.name for f in value.list.func)
    return names


def _function_blocker(
    name: str,
    library: Mapping[str, function_pb2.FunctionDef],
    table: SupportTable,
    seen: set[str],
) -> str | None:
    """Why a called function cannot compile, or None."""
    if name in seen:
        return None
    seen.add(name)
    if name not in library:
        return f"calls {name}, which is not in the graph's library"
    for node in library[name].node_def:
        if node.op in library:
            reason = _function_blocker(node.op, library, table, seen)
        elif not table.compiles(node.op):
            reason = f"its body has {node.op}, which has no {table.device_type} kernel"
        else:
            reason = None
        for called in _called_functions(node):
            reason = reason or _function_blocker(called, library, table, seen)
        if reason:
            return reason
    return None


def _dtype_blocker(node: node_def_pb2.NodeDef, flat: FlatGraph) -> str | None:
    names = [tensor_name(i) for i in node.input if not is_control_input(i)]
    infos = [flat.tensors[n] for n in names if n in flat.tensors] + flat.outputs_of(node.name)
    for info in infos:
        if info.dtype in _UNCOMPILABLE_DTYPES:
            return _UNCOMPILABLE_DTYPES[info.dtype]
    return None


def _tf1_loop_interiors(graph_def: graph_pb2.GraphDef) -> set[str]:
    """Nodes inside TF1 while-loop frames (after an Enter, before its Exit).

    A segment may not straddle a frame, and frames are rare in TF2 graphs:
    their contents stay native."""
    consumers: dict[str, list[str]] = {n.name: [] for n in graph_def.node}
    for node in graph_def.node:
        for graph_input in node.input:
            consumers[op_name(graph_input)].append(node.name)
    ops = {n.name: n.op for n in graph_def.node}
    inside: set[str] = set()
    stack = [n.name for n in graph_def.node if n.op == "Enter"]
    while stack:
        name = stack.pop()
        if name in inside:
            continue
        inside.add(name)
        stack.extend(c for c in consumers[name] if ops[c] != "Exit")
    return inside


def exclusion_reasons(flat: FlatGraph, table: SupportTable) -> dict[str, str]:
    """Node name -> why it stays native, for every node that may not be compiled."""
    library = {f.signature.name: f for f in flat.graph_def.library.function}
    output_nodes = {op_name(name) for name in flat.output_names}
    loop_interiors = _tf1_loop_interiors(flat.graph_def)
    reasons: dict[str, str] = {}
    for node in flat.graph_def.node:
        reason: str | None
        if node.name in loop_interiors:
            reason = "inside a TF1 while loop (Enter/Exit frame)"
        elif node.name in output_nodes:
            reason = "a signature output (keeps the signature's tensor names)"
        elif node.op in _NEVER_COMPILED:
            reason = _NEVER_COMPILED[node.op]
        elif node.op in library:
            reason = _function_blocker(node.op, library, table, set())
        elif not table.compiles(node.op):
            reason = f"no {table.device_type} kernel for {node.op}"
        else:
            reason = _dtype_blocker(node, flat)
        for called in _called_functions(node):
            reason = reason or _function_blocker(called, library, table, set())
        if reason is not None:
            reasons[node.name] = reason
    return reasons


def count_compute_ops(op_types: Iterable[str]) -> int:
    """Ops that count toward `minimum_segment_size` (not Const, Identity or NoOp)."""
    return sum(1 for op in op_types if op not in ("Const", "Identity", "NoOp"))
