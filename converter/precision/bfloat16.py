"""BF16: a frozen graph rewritten to compute in bfloat16, float32 at its boundary.

Grappler's `auto_mixed_precision_onednn_bfloat16` does the rewrite offline: the ops
oneDNN runs in bf16 (convolutions, matmuls and what lies between them) get bfloat16
types, with casts where float32 parts meet them; the tensors it is told to keep (the
signature's inputs and outputs) keep their nodes and stay float32. Saved, that is
the graph TF Serving loads; its own Grappler then fuses the bf16 ops as it fuses
float32 ones (DESIGN fact 19: ResNet50 0.60x / 0.54x of frozen FP32 in a TF1 Session).

Grappler offers the rewrite only in a process where oneDNN is on, which TensorFlow
decides once, at start: on by default only on CPUs with VNNI, BF16 or AMX, else as
`TF_ENABLE_ONEDNN_OPTS` says. So it runs in a child process with oneDNN on, whatever
the converter's own process has; whether the result is faster is measured.

Run as: python -m converter.precision.bfloat16 REQUEST_DIR (see `bfloat16_graph`).
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile
from collections.abc import Sequence

import tensorflow as tf
from tensorflow.core.framework import graph_pb2, types_pb2
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
from tensorflow.python.grappler import tf_optimizer

from converter.onednn import ONEDNN_ON
from converter.serving.child_process import ChildFailed, run_child

_OPTIMIZER = "auto_mixed_precision_onednn_bfloat16"


def bfloat16_ops(graph_def: graph_pb2.GraphDef) -> int:
    """How many nodes of `graph_def` (library functions aside) compute in bfloat16."""
    return sum(1 for node in graph_def.node if node.op != "Cast" and any(
        value.type == types_pb2.DT_BFLOAT16 or types_pb2.DT_BFLOAT16 in value.list.type
        for value in node.attr.values()))


def bfloat16_graph(graph_def: graph_pb2.GraphDef,
                   keep: Sequence[str]) -> graph_pb2.GraphDef | str:
    """`graph_def` computing in bfloat16 where oneDNN can, or why it cannot.

    `keep` names the boundary: the tensors ("node:0") fed and fetched (signature
    inputs and outputs) and any node run by name (a main op); they keep their
    nodes and their float32 types."""
    with tempfile.TemporaryDirectory(prefix="tftrt-bf16-") as scratch:
        request = pathlib.Path(scratch)
        (request / "graph.pb").write_bytes(graph_def.SerializeToString())
        (request / "request.json").write_text(json.dumps({"keep": list(keep)}))
        try:
            answer = run_child("converter.precision.bfloat16", request, settings=ONEDNN_ON)
        except ChildFailed as failure:
            return f"Grappler's bfloat16 rewrite failed: {str(failure).splitlines()[-1]}"
        if answer["changed"]:
            return (f"Grappler's bfloat16 rewrite changed the type of boundary tensor(s) "
                    f"{answer['changed'][:5]}, which must stay as they were")
        rewritten = graph_pb2.GraphDef.FromString((request / "bf16.pb").read_bytes())
    if not bfloat16_ops(rewritten):
        return ("Grappler's bfloat16 rewrite found no op to compute in bfloat16 (it "
                "converts convolutions, matmuls and the ops between them)")
    return rewritten


def _rewrite(graph_def: graph_pb2.GraphDef, keep: Sequence[str]) -> graph_pb2.GraphDef:
    meta_graph = meta_graph_pb2.MetaGraphDef()
    meta_graph.graph_def.CopyFrom(graph_def)
    # Grappler keeps the nodes of its fetches as they are: the boundary.
    meta_graph.collection_def["train_op"].node_list.value.extend(keep)
    config = config_pb2.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.min_graph_nodes = -1
    rewrite.optimizers.append(_OPTIMIZER)  # a list runs only what it names
    return tf_optimizer.OptimizeGraph(config, meta_graph, graph_id=b"tf_graph")


def _dtypes(graph_def: graph_pb2.GraphDef, tensors: Sequence[str]) -> list[tf.DType]:
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    return [graph.get_tensor_by_name(name).dtype for name in tensors]


def _main(request_dir: str) -> None:
    directory = pathlib.Path(request_dir)
    keep = json.loads((directory / "request.json").read_text())["keep"]
    graph_def = graph_pb2.GraphDef.FromString((directory / "graph.pb").read_bytes())
    rewritten = _rewrite(graph_def, keep)
    tensors = [name for name in keep if ":" in name]
    changed = [name for name, before, after in zip(
        tensors, _dtypes(graph_def, tensors), _dtypes(rewritten, tensors), strict=True)
        if before != after]
    (directory / "bf16.pb").write_bytes(rewritten.SerializeToString())
    print(json.dumps({"changed": changed}))


if __name__ == "__main__":
    _main(sys.argv[1])
