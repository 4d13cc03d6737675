"""TF1 exports (`tf.compat.v1.saved_model.Builder`): converted through the Session
loader, which is how TF Serving loads them and the only loader that reads all of
them (reference variables, main ops, unknown-rank inputs; DESIGN fact 16).

Freezing uses TF1's own `convert_variables_to_constants` on the Session graph and
folds the result for TF's fusions (`graph.fold`), then re-exports with the TF1
builder: every signature with its method name, the assets and the main op (table
initializers) survive. XLA segments need a TF2 function graph, so the candidates
here are the original and frozen native.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.python.saved_model import loader_impl

from converter.graph.fold import fold_for_fusion
from converter.graph.freeze import FREEZE_LIMIT_BYTES
from converter.graph.names import is_control_input, op_name

_VARIABLES = frozenset({"VariableV2", "Variable", "VarHandleOp"})
# Consumers of a variable that only read it (or ask whether it is initialized).
_READERS = frozenset({"Identity", "ReadVariableOp", "ResourceGather", "VarIsInitializedOp",
                      "IsVariableInitialized"})
_INIT_COLLECTIONS = ("saved_model_main_op", "legacy_init_op")


@dataclasses.dataclass(frozen=True)
class FrozenSessionGraph:
    """A TF1 export's graph with its variables as constants, folded for fusion,
    ready to re-export."""

    graph_def: graph_pb2.GraphDef
    init_op: str | None
    """The main op (or legacy init op) that initialises tables, by name."""
    variables: int
    frozen_bytes: int


def _init_op(meta_graph: Any) -> str | None:
    for collection in _INIT_COLLECTIONS:
        if collection in meta_graph.collection_def:
            values = meta_graph.collection_def[collection].node_list.value
            if values:
                return op_name(str(values[0]))
    return None


def _written(graph_def: graph_pb2.GraphDef) -> list[str]:
    """Variables that some op of `graph_def` hands to anything but a read."""
    ops = {n.name: n.op for n in graph_def.node}
    written = set()
    for node in graph_def.node:
        if node.op in _READERS:
            continue
        for graph_input in node.input:
            producer = op_name(graph_input)
            if not is_control_input(graph_input) and ops.get(producer) in _VARIABLES:
                written.add(producer)
    return sorted(written)


def freeze_session_graph(directory: pathlib.Path, tags: tuple[str, ...],
                         proto: Any, meta_graph: Any) -> FrozenSessionGraph | str:
    """Load the export in a Session and freeze every variable the signatures and the
    main op reach; or say why it cannot be frozen."""
    if len(proto.meta_graphs) > 1:
        return ("the SavedModel also has MetaGraphs for other tags, which re-exporting "
                "would drop")
    init_op = _init_op(meta_graph)
    keep = sorted({op_name(info.name) for signature in meta_graph.signature_def.values()
                   for info in [*signature.outputs.values(), *signature.inputs.values()]}
                  | ({init_op} if init_op else set()))
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.saved_model.loader.load(session, list(tags), str(directory))
        graph_def = graph.as_graph_def()
        reached = tf.compat.v1.graph_util.extract_sub_graph(graph_def, keep)
        written = _written(reached)
        if written:
            return (f"the signatures or the main op write variable(s) {written[:5]}: they "
                    "must stay variables, and TF1 freezing converts all or none")
        variables = [n.name for n in reached.node if n.op in _VARIABLES]
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
            session, graph_def, keep)
    names = set(variables)
    size = sum(len(n.attr["value"].tensor.tensor_content) for n in frozen.node
               if n.name in names)
    if size > FREEZE_LIMIT_BYTES:
        return (f"its weights ({size / 2**20:.0f} MiB) pass the "
                f"{FREEZE_LIMIT_BYTES / 2**20:.0f} MiB freezing limit (protobuf's 2 GB is near)")
    # Asset paths are found by name when re-exporting (`_point_assets_at`).
    assets = {op_name(name) for name in loader_impl.get_asset_tensors(str(directory), meta_graph)}
    return FrozenSessionGraph(graph_def=fold_for_fusion(frozen, {*keep, *assets}),
                              init_op=init_op, variables=len(variables), frozen_bytes=size)


def _point_assets_at(graph_def: graph_pb2.GraphDef, meta_graph: Any,
                     directory: pathlib.Path) -> list[str]:
    """Make each asset's path constant name the input's copy (the builder copies
    the file from there); the asset tensors' names. TF1 builders list assets in
    `asset_file_def` or in the `saved_model_assets` collection; TF reads both."""
    nodes = {n.name: n for n in graph_def.node}
    paths = loader_impl.get_asset_tensors(str(directory), meta_graph)
    for name, path in paths.items():
        nodes[op_name(name)].attr["value"].tensor.CopyFrom(
            tf.make_tensor_proto(tf.compat.as_bytes(path)))
    return sorted(paths)


def write_frozen_export(frozen: FrozenSessionGraph, meta_graph: Any, tags: tuple[str, ...],
                        source: pathlib.Path, target: pathlib.Path) -> None:
    """Write the frozen graph as a TF1 SavedModel at `target`, signatures, method
    names, assets and main op as the input had them."""
    graph_def = graph_pb2.GraphDef()
    graph_def.CopyFrom(frozen.graph_def)
    asset_names = _point_assets_at(graph_def, meta_graph, source)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
        assets = [graph.get_tensor_by_name(name) for name in asset_names]
        main_op = graph.get_operation_by_name(frozen.init_op) if frozen.init_op else None
        with tf.compat.v1.Session(graph=graph) as session:
            builder = tf.compat.v1.saved_model.Builder(str(target))
            builder.add_meta_graph_and_variables(
                session, list(tags), signature_def_map=dict(meta_graph.signature_def),
                assets_collection=assets or None, main_op=main_op)
            builder.save()
