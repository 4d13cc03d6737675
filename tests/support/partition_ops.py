"""Test-only: which ops the TF1 Session actually runs for a SavedModel, after Grappler
(its remapper fuses ops) and, with oneDNN on, TF's layout pass renamed them.

oneDNN's rewrites are chosen when TensorFlow is imported (TF_ENABLE_ONEDNN_OPTS,
whose default depends on the CPU), so each count runs in a fresh process.
Run as: python -m tests.support.partition_ops MODEL_DIR SHAPE_JSON
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Sequence

# Plumbing every partition graph has; the rest is what computes.
_PLUMBING = frozenset({"_Recv", "_Send", "_Arg", "_Retval", "Const", "NoOp", "Identity",
                       "IdentityN"})


def partition_ops(model_dir: pathlib.Path, shape: Sequence[int],
                  onednn: bool) -> collections.Counter[str]:
    """Counts of the ops in the partition graphs of one `serving_default` call on a
    float32 input of `shape`, keyed "op[fused ops]" (e.g. "_FusedConv2D[BiasAdd,Relu]")."""
    environment = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if onednn else "0")
    root = pathlib.Path(__file__).resolve().parents[2]
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(root), environment.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.partition_ops", str(model_dir),
         json.dumps(list(shape))],
        env=environment, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return collections.Counter(json.loads(done.stdout.strip().splitlines()[-1]))


def _main(model_dir: str, shape_json: str) -> None:
    import numpy as np
    import tensorflow as tf

    from converter import ServingSession

    tf.compat.v1.disable_eager_execution()
    with ServingSession.load(model_dir) as served:
        signature = served.signature_def("serving_default")
        (name,) = signature.inputs
        feed = {name: np.random.default_rng(0).random(json.loads(shape_json)).astype(
            np.float32)}
        metadata = served.traced_run("serving_default", feed)
    counts: collections.Counter[str] = collections.Counter()
    for graph in metadata.partition_graphs:
        for node in graph.node:
            if node.op in _PLUMBING:
                continue
            fused = [op.decode() for op in node.attr["fused_ops"].list.s]
            counts[f"{node.op}[{','.join(fused)}]" if fused else node.op] += 1
    print(json.dumps(counts))


if __name__ == "__main__":
    _main(*sys.argv[1:])
