"""Every signature of a TF2 SavedModel with its read-only variables frozen.

A variable counts as written if any signature writes it, so freezing one
signature never breaks another's state. A signature Grappler cannot flatten
keeps its graph, and every variable it captures stays a variable.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from converter.graph.freeze import FREEZE_LIMIT_BYTES, Freezing, freeze, written_variables
from converter.graph.inline import FlatGraph, flatten_signature, function_from_flat
from converter.report import FreezeReport
from converter.savedmodel.loading import LoadedSignature


@dataclasses.dataclass
class FrozenSignatures:
    """The converted signature's frozen flat graph and every signature's function."""

    flat: FlatGraph
    """The converted signature, frozen: segments are found in this graph."""
    functions: dict[str, Any]
    """Signature key -> its frozen function (or its original, if it could not be)."""
    same_as_converted: list[str]
    """Other signatures whose graph is the converted one's (Keras's `serve`): they
    take the converted function too, so the weights are stored once."""
    weights: frozenset[str]
    """Nodes of `flat` that hold frozen weights: they enter engines as arguments."""
    report: FreezeReport
    state: list[tuple[Any, Any]]
    """(variable, value before anything ran) for each written variable."""

    def restore_state(self) -> None:
        """Put back the written variables' values: build() runs the signature,
        which changes them (a counter counts), and the saved model must start from
        the original's state."""
        for variable, value in self.state:
            variable.assign(value)


def _identity(flat: FlatGraph) -> tuple[bytes, tuple[tuple[str, int], ...]]:
    """What makes two flat graphs compute the same: their nodes, less the names
    that tracing gave placeholders, and the very objects they capture."""
    graph_def = graph_pb2.GraphDef()
    graph_def.CopyFrom(flat.graph_def)
    for node in graph_def.node:
        node.attr.pop("_user_specified_name", None)
    return (graph_def.SerializeToString(deterministic=True),
            tuple(sorted((k, id(v)) for k, v in flat.captures.items())))


def freeze_signatures(loaded: LoadedSignature, flat: FlatGraph) -> FrozenSignatures:
    """Freeze `flat` (the converted signature, flattened) and every other signature."""
    flats: dict[str, FlatGraph] = {loaded.key: flat}
    unfrozen: dict[str, str] = {}
    written: set[int] = set()
    for key, function in loaded.root.signatures.items():
        if key in flats:
            continue
        try:
            flats[key] = flatten_signature(function)
        except Exception as error:  # Grappler raises bare errors for graphs it cannot import
            unfrozen[key] = f"Grappler could not flatten it ({str(error).splitlines()[0]})"
            written.update(id(t) for t in function.captured_inputs)
    for other in flats.values():
        written |= written_variables(other)
    converted = _identity(flat)
    same = [k for k, f in flats.items() if k != loaded.key and _identity(f) == converted]
    budget = FREEZE_LIMIT_BYTES
    results: dict[str, Freezing] = {}
    values: dict[int, Any] = {}  # a weight two signatures read is frozen (and saved) once
    for key, graph in flats.items():
        if key in same:
            continue
        results[key] = freeze(graph, written, budget, values)
        budget -= results[key].frozen_bytes
    functions = dict(loaded.root.signatures)
    for key, result in results.items():
        if result.frozen:
            functions[key] = function_from_flat(result.flat, result.flat.graph_def,
                                                loaded.root.signatures[key])
    for key in same:
        functions[key] = functions[loaded.key]
    state = [(v, v.numpy()) for v in tf.train.TrackableView(loaded.root).descendants()
             if isinstance(v, tf.Variable) and id(v.handle) in written]
    return FrozenSignatures(
        flat=results[loaded.key].flat,
        functions=functions,
        same_as_converted=same,
        weights=results[loaded.key].weights,
        report=FreezeReport(
            frozen_variables=len(values),
            frozen_bytes=sum(r.frozen_bytes for r in results.values()),
            kept_variables={f"{k}/{name}": why for k, r in results.items()
                            for name, why in r.kept.items()},
            unfrozen_signatures=unfrozen,
        ),
        state=state,
    )
