"""INT8: a frozen graph rewritten to oneDNN's int8 ops, calibrated on real inputs.

Intel Neural Compressor (`neural-compressor-tf`) does the rewrite: it runs the graph
on the calibration inputs to learn each quantized tensor's range, then replaces
convolutions and matmuls, with their bias and activation, by the int8 kernels stock
TensorFlow registers (`QuantizeV2`, `QuantizedConv2DWithBiasAndReluAndRequantize`,
`QuantizedMatMulWithBiasAndDequantize`, ...), float32 at the boundary. TF Serving
has the same kernels (it builds with oneDNN), and like the converter runs them only
with oneDNN on.

An op whose int8 form loses accuracy stays in float, as TF-TRT ran such segments
natively: when the whole rewrite misses the tolerance on the calibration inputs, the
first and the last quantizable op (where quantization error is known to hurt most:
the raw input, the scores) are kept in float32 and it is tried once more.

The rewrite runs in a child process with oneDNN on: the library calibrates in
Sessions of its own, writes a workspace into its working directory and sets global
state, none of which the converter's process should get.

With `use_calibration=False` the ranges are not calibrated but read from the graph's
fake-quantization nodes (`converter.precision.fake_quant`): the library rewrites the
graph without them, its own sampling run on made-up inputs only drives the rewrite,
and every range it quantizes with is then set to the graph's. Ops whose input has no
fake-quant range stay in float32, and the rewrite is checked against the graph with
its fake-quant nodes.

Run as: python -m converter.precision.int8 REQUEST_DIR (see `int8_graph`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
from tensorflow.core.framework import graph_pb2

from converter.onednn import ONEDNN_ON
from converter.precision.fake_quant import (
    FakeQuantRanges,
    Range,
    fake_quantize_float_inputs,
    pin_ranges,
    propagated,
    unranged_ops,
)
from converter.serving.child_process import ChildFailed, read_tensor, run_child, write_tensors

QUANTIZABLE: Final = frozenset({"Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2",
                                "Conv3D"})
"""Op types whose int8 form the library writes (the compute; pooling and concatenation
follow them into int8 where they sit between)."""

_CHECKED_INPUTS = 16
"""Calibration inputs the rewrite is checked on in the child (the converter checks
the candidate again, on every measured shape, against the original)."""


@dataclasses.dataclass(frozen=True)
class Int8Rewrite:
    """The rewritten graph and what it took."""

    graph_def: graph_pb2.GraphDef
    quantized: int
    """Quantizable ops computing in int8."""
    kept_float: list[str]
    """Quantizable ops kept in float32 because their int8 form missed the tolerance."""
    error: float
    """Scaled error against float32 on the calibration inputs it was checked on."""
    unranged: list[str] = dataclasses.field(default_factory=list)
    """Quantizable ops kept in float32 because the graph's fake-quant nodes gave their
    input no range (use_calibration=False only)."""


def quantizable_ops(graph_def: graph_pb2.GraphDef) -> list[str]:
    """Names of the ops the rewrite can quantize, in graph order."""
    return [node.name for node in graph_def.node if node.op in QUANTIZABLE]


def explicit_paddings_as_pads(graph_def: graph_pb2.GraphDef) -> graph_pb2.GraphDef:
    """`graph_def` with each Conv2D of padding "EXPLICIT" (where freezing merged a
    zero Pad, `fold.pads_into_convolutions`) a Pad and a "VALID" Conv2D again: the
    int8 convolutions take SAME or VALID only, and the rewrite merges the Pad itself."""
    import tensorflow as tf

    rewritten = graph_pb2.GraphDef()
    rewritten.CopyFrom(graph_def)
    for node in list(rewritten.node):
        if node.op != "Conv2D" or node.attr["padding"].s != b"EXPLICIT":
            continue
        paddings = rewritten.node.add(name=f"{node.name}/explicit_paddings", op="Const")
        paddings.attr["dtype"].type = tf.int32.as_datatype_enum
        paddings.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(
            np.asarray(node.attr["explicit_paddings"].list.i, np.int32).reshape(4, 2)))
        pad = rewritten.node.add(name=f"{node.name}/explicit_pad", op="Pad",
                                 input=[node.input[0], paddings.name])
        pad.attr["T"].CopyFrom(node.attr["T"])
        pad.attr["Tpaddings"].type = tf.int32.as_datatype_enum
        node.input[0] = pad.name
        node.attr["padding"].s = b"VALID"
        del node.attr["explicit_paddings"]
    return rewritten


def int8_graph(graph_def: graph_pb2.GraphDef, inputs: Sequence[str], outputs: Sequence[str],
               calibration: Sequence[Mapping[str, np.ndarray]],
               tolerance: float, fake_quant: FakeQuantRanges | None = None,
               ) -> Int8Rewrite | str:
    """`graph_def` (weights as Const nodes) computing in int8 where that keeps its
    outputs within `tolerance` (scaled error) on `calibration`, or why it cannot.

    `inputs` and `outputs` are the boundary's tensor names ("node:0"); each
    calibration feed maps input tensor names to arrays. With `fake_quant` (the ranges
    `graph_def`'s fake-quant nodes fixed), its float graph is rewritten with those
    ranges, `calibration` only drives the library's sampling run and the check, and
    the check compares with `graph_def`, fake-quant nodes and all."""
    rewritten_graph = graph_def if fake_quant is None else fake_quant.graph_def
    if not quantizable_ops(rewritten_graph):
        return ("it has no op the int8 rewrite quantizes (convolutions and matmuls: "
                f"{sorted(QUANTIZABLE)})")
    with tempfile.TemporaryDirectory(prefix="tftrt-int8-") as scratch:
        request = pathlib.Path(scratch)
        (request / "graph.pb").write_bytes(
            explicit_paddings_as_pads(rewritten_graph).SerializeToString())
        (request / "reference.pb").write_bytes(graph_def.SerializeToString())
        feeds = [write_tensors(request, f"calibration{i}", feed)
                 for i, feed in enumerate(calibration)]
        (request / "request.json").write_text(json.dumps({
            "inputs": list(inputs), "outputs": list(outputs), "feeds": feeds,
            "tolerance": tolerance,
            "ranges": None if fake_quant is None else fake_quant.ranges,
            "per_channel": [] if fake_quant is None else fake_quant.per_channel}))
        try:
            answer = run_child("converter.precision.int8", request, settings=ONEDNN_ON)
        except ChildFailed as failure:
            return f"Intel Neural Compressor's int8 rewrite failed: {str(failure).splitlines()[-1]}"
        if answer["failure"]:
            return str(answer["failure"])
        rewritten = graph_pb2.GraphDef.FromString((request / "int8.pb").read_bytes())
    return Int8Rewrite(graph_def=rewritten, quantized=answer["quantized"],
                       kept_float=answer["kept_float"], error=answer["error"],
                       unranged=answer["unranged"])


def _quantize(graph_def: graph_pb2.GraphDef, inputs: Sequence[str], outputs: Sequence[str],
              feeds: Sequence[Mapping[str, np.ndarray]], keep_float: Sequence[str],
              per_channel: Sequence[str] = ()) -> Any:
    from neural_compressor.tensorflow import Model, StaticQuantConfig, quantize_model

    model = Model(graph_def)
    model.input_tensor_names = list(inputs)
    model.output_tensor_names = list(outputs)
    config = StaticQuantConfig()
    for name in per_channel:
        if name not in keep_float:
            config.set_local(name, StaticQuantConfig(weight_granularity="per_channel"))
    for name in keep_float:
        config.set_local(name, StaticQuantConfig(weight_dtype="fp32", act_dtype="fp32"))

    class Calibration:
        """The library's data loader: (inputs by node name, labels) per batch."""

        batch_size = 1

        def __iter__(self) -> Any:
            for feed in feeds:
                yield {name.split(":")[0]: value for name, value in feed.items()}, None

    quantized = quantize_model(model, config, calib_dataloader=Calibration(),
                               calib_iteration=len(feeds))
    return quantized.graph_def if quantized is not None else None


def _run(graph_def: graph_pb2.GraphDef, outputs: Sequence[str],
         feeds: Sequence[Mapping[str, np.ndarray]]) -> list[list[np.ndarray]]:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return [list(session.run(list(outputs), dict(feed))) for feed in feeds]


def _rewrite(graph_def: graph_pb2.GraphDef, meta: Mapping[str, Any],
             feeds: Sequence[Mapping[str, np.ndarray]], keep_float: Sequence[str],
             ranges: Mapping[str, Range] | None) -> tuple[graph_pb2.GraphDef | None, list[str]]:
    """The library's rewrite keeping `keep_float` in float32, with the graph's ranges
    when given (an op whose requantized output has none is kept float too), and the
    ops it kept float."""
    keep = list(keep_float)
    rewritten = _quantize(graph_def, meta["inputs"], meta["outputs"], feeds, keep,
                          meta["per_channel"])
    if rewritten is None or ranges is None:
        return rewritten, keep
    pinned, unranged = pin_ranges(rewritten, graph_def, ranges)
    if not unranged:
        return fake_quantize_float_inputs(pinned, keep, ranges), keep
    keep = sorted({*keep, *unranged})
    rewritten = _quantize(graph_def, meta["inputs"], meta["outputs"], feeds, keep,
                          meta["per_channel"])
    if rewritten is None:
        return None, keep
    pinned, unranged = pin_ranges(rewritten, graph_def, ranges)
    if unranged:
        raise RuntimeError(f"kept {unranged} in float, yet their ranges are still needed")
    return fake_quantize_float_inputs(pinned, keep, ranges), keep


def _main(request_dir: str) -> None:
    from converter.serving.measuring import scaled_error

    logging.getLogger("neural_compressor").setLevel(logging.WARNING)
    directory = pathlib.Path(request_dir)
    meta = json.loads((directory / "request.json").read_text())
    graph_def = graph_pb2.GraphDef.FromString((directory / "graph.pb").read_bytes())
    reference = graph_pb2.GraphDef.FromString((directory / "reference.pb").read_bytes())
    # The ranges reach through the pads put back before explicitly padded convolutions.
    ranges = None if meta["ranges"] is None else propagated(graph_def, {
        tensor: (low, high) for tensor, (low, high) in meta["ranges"].items()})
    feeds = [{name: read_tensor(directory, file) for name, file in feed.items()}
             for feed in meta["feeds"]]
    checked = feeds[:_CHECKED_INPUTS]
    expected = _run(reference, meta["outputs"], checked)
    candidates = quantizable_ops(graph_def)
    unranged = [] if ranges is None else unranged_ops(graph_def, ranges, QUANTIZABLE)
    ranged = [name for name in candidates if name not in unranged]
    if not ranged:
        print(json.dumps({"failure": "the fake-quantization nodes give none of its "
                          f"convolutions and matmuls a range on its input ({len(candidates)} "
                          "without)"}))
        return
    attempts = [unranged, sorted({*unranged, ranged[0], ranged[-1]})] if len(
        ranged) > 2 else [unranged]
    os.chdir(directory)  # the library writes its workspace here
    tried = []
    for keep_float in attempts:
        rewritten, kept = _rewrite(graph_def, meta, feeds, keep_float, ranges)
        if rewritten is None:
            print(json.dumps({"failure": "Intel Neural Compressor returned no model (its log "
                              "above says why)"}))
            return
        error = max(scaled_error(got, want) for got, want in zip(
            _run(rewritten, meta["outputs"], checked), expected, strict=True))
        tried.append(f"{len(kept)} op(s) in float: scaled error {error:.3g}")
        print(tried[-1], file=sys.stderr)
        quantized = sum(1 for n in rewritten.node if n.op.startswith(("Quantized",
                                                                      "_Quantized")))
        if not quantized:
            print(json.dumps({"failure": "Intel Neural Compressor quantized none of its ops"}))
            return
        if error <= meta["tolerance"]:
            (directory / "int8.pb").write_bytes(rewritten.SerializeToString())
            print(json.dumps({"failure": None, "quantized": quantized,
                              "kept_float": [n for n in kept if n not in unranged],
                              "unranged": unranged, "error": error}))
            return
    inputs = "the calibration inputs" if ranges is None else "made-up inputs"
    print(json.dumps({"failure": f"its int8 form misses the tolerance {meta['tolerance']:g} "
                      f"on {inputs} ({'; '.join(tried)})"}))


if __name__ == "__main__":
    _main(sys.argv[1])
