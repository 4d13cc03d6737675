"""Test-only: INT8 checks that run in a process with oneDNN on (`onednn_child`),
where int8 kernels run; each returns what the test asserts on, as JSON values."""

from __future__ import annotations

import collections
import pathlib
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

import converter as trt
from converter.graph.freeze import captures_as_constants, signature_inputs
from converter.graph.inline import flatten_signature
from converter.precision.fake_quant import read_ranges, within_ranges
from converter.precision.int8 import Int8Rewrite, int8_graph
from converter.savedmodel.loading import load_signature
from converter.serving.measuring import scaled_error
from converter.serving.session import ServingSession
from converter.xla.frozen_signatures import freeze_signatures
from tests.support import trained_models

CALIBRATION_IMAGES = 256
"""Training images the ranges are calibrated on (in batches of 8)."""


def _inputs(kind: str) -> tuple[str, np.ndarray]:
    if kind == "cnn":
        return "image", trained_models.digit_images()
    return "tokens", trained_models.digit_tokens()


def _calibration(name: str, inputs: np.ndarray) -> list[dict[str, np.ndarray]]:
    return [{name: inputs[i:i + 8]} for i in range(0, CALIBRATION_IMAGES, 8)]


def _run(graph_def: graph_pb2.GraphDef, inputs: list[str], outputs: list[str],
         feed: np.ndarray) -> np.ndarray:
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return np.asarray(session.run(outputs[0], {inputs[0]: feed}))


def rewrite_agreement(model_dir: str, kind: str) -> dict[str, Any]:
    """The int8 rewrite of a trained model: its ops, and its top-1 agreement with
    float32 on the held-out images."""
    name, inputs = _inputs(kind)
    loaded = load_signature(model_dir)
    flat = freeze_signatures(loaded, flatten_signature(loaded.function)).flat
    float_graph = captures_as_constants(flat)
    assert not isinstance(float_graph, str), float_graph
    fed = signature_inputs(flat)
    feeds = [dict(zip(fed, feed.values(), strict=True)) for feed in _calibration(name, inputs)]
    rewrite = int8_graph(float_graph, fed, flat.output_names, feeds, trt.TOLERANCE["INT8"])
    assert isinstance(rewrite, Int8Rewrite), rewrite
    held_out = trained_models.held_out(inputs)
    expected = _run(float_graph, fed, flat.output_names, held_out)
    produced = _run(rewrite.graph_def, fed, flat.output_names, held_out)
    return {"agreement": float(np.mean(expected.argmax(1) == produced.argmax(1))),
            "captured_constants": len(set(flat.captures) - flat.weights),
            "explicit_padding": sum(1 for n in float_graph.node if n.op == "Conv2D"
                                    and n.attr["padding"].s == b"EXPLICIT"),
            "held_out": len(held_out), "quantized": rewrite.quantized,
            "kept_float": rewrite.kept_float,
            "ops": collections.Counter(n.op for n in rewrite.graph_def.node)}


def tftrt_int8_recipe(model_dir: str, output_dir: str) -> dict[str, Any]:
    """TF-TRT's INT8 recipe on the default backend: convert with calibration, build
    at batch 1 and 8, save; the candidates' verdicts and the saved model's top-1
    agreement with the original on the held-out images, both as TF Serving runs them."""
    name, inputs = _inputs("cnn")
    params = trt.DEFAULT_TRT_CONVERSION_PARAMS._replace(
        precision_mode=trt.TrtPrecisionMode.INT8, use_calibration=True)
    converter = trt.TrtGraphConverterV2(input_saved_model_dir=model_dir,
                                        conversion_params=params)
    converter.convert(calibration_input_fn=lambda: iter(_calibration(name, inputs)))
    converter.build(input_fn=lambda: ({name: inputs[i:i + b]} for b in (1, 8)
                                      for i in range(2)))
    converter.save(output_dir)
    report = converter.report()
    assert report.choice is not None
    held_out = {name: trained_models.held_out(inputs)}
    tf.compat.v1.disable_eager_execution()
    scores = []
    for directory in (model_dir, output_dir):
        with ServingSession.load(pathlib.Path(directory)) as served:
            (output,) = served.run("serving_default", held_out).values()
            scores.append(np.asarray(output))
    return {
        "precision": [report.precision, report.precision_reason],
        "chosen": report.choice.chosen,
        "candidates": {c.name: {"precision": c.precision, "failure": c.failure,
                                "worst_error": c.worst_error, "note": c.note}
                       for c in report.choice.candidates},
        "agreement": float(np.mean(scores[0].argmax(1) == scores[1].argmax(1))),
    }


def _fake_quant_rewrite(model_dir: str) -> tuple[graph_pb2.GraphDef, Any, list[str], list[str]]:
    """A QAT model's frozen graph (fake-quant nodes and all), its int8 rewrite with
    the ranges those nodes fix, and its boundary."""
    loaded = load_signature(model_dir)
    flat = freeze_signatures(loaded, flatten_signature(loaded.function)).flat
    qat_graph = captures_as_constants(flat)
    assert not isinstance(qat_graph, str), qat_graph
    ranges = read_ranges(qat_graph)
    assert not isinstance(ranges, str), ranges
    fed = signature_inputs(flat)
    made_up = within_ranges([{fed[0]: np.zeros((8, trained_models.SIDE, trained_models.SIDE,
                                                1), np.float32)}] * 4, ranges.ranges)
    rewrite = int8_graph(qat_graph, fed, flat.output_names, made_up, trt.TOLERANCE["INT8"],
                         ranges)
    assert isinstance(rewrite, Int8Rewrite), rewrite
    return qat_graph, rewrite, fed, flat.output_names


def fake_quant_ranges(model_dir: str) -> dict[str, Any]:
    """The int8 rewrite of a QAT model with its own ranges: the ranges its QuantizeV2
    and requantizing ops carry, and how its outputs compare with the QAT graph's on the
    held-out images (top-1 agreement, scaled error)."""
    qat_graph, rewrite, fed, outputs = _fake_quant_rewrite(model_dir)
    nodes = {node.name: node for node in rewrite.graph_def.node}

    def value(name: str) -> float:
        return float(tf.make_ndarray(nodes[name.split(":")[0]].attr["value"].tensor))

    carried = {}
    for node in rewrite.graph_def.node:
        if node.op == "QuantizeV2":
            carried[node.name] = [value(node.input[1]), value(node.input[2])]
        elif node.op.endswith("Requantize"):
            carried[node.name] = [value(node.input[-2]), value(node.input[-1])]
    held_out = trained_models.held_out(trained_models.digit_images())
    expected = _run(qat_graph, fed, outputs, held_out)
    produced = _run(rewrite.graph_def, fed, outputs, held_out)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(rewrite.graph_def, name="")
    metadata = tf.compat.v1.RunMetadata()
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(outputs[0], {fed[0]: held_out[:8]}, options=tf.compat.v1.RunOptions(
            trace_level=tf.compat.v1.RunOptions.FULL_TRACE, output_partition_graphs=True),
            run_metadata=metadata)
    ran = collections.Counter(n.op for g in metadata.partition_graphs for n in g.node)
    return {"ranges": carried, "quantized": rewrite.quantized, "unranged": rewrite.unranged,
            "ran": ran,
            "kept_float": rewrite.kept_float,
            "agreement": float(np.mean(expected.argmax(1) == produced.argmax(1))),
            "error": scaled_error([produced], [expected]),
            "ops": collections.Counter(n.op for n in rewrite.graph_def.node)}


def tftrt_fake_quant_recipe(model_dir: str, output_dir: str) -> dict[str, Any]:
    """TF-TRT's INT8 recipe without calibration on a QAT model: convert with
    use_calibration=False, build at batch 1 and 8, save; the int8 candidate's verdict,
    and the saved model's top-1 agreement with the QAT model and the ops its Session
    runs, as TF Serving runs it."""
    inputs = trained_models.digit_images()
    params = trt.DEFAULT_TRT_CONVERSION_PARAMS._replace(
        precision_mode=trt.TrtPrecisionMode.INT8, use_calibration=False)
    converter = trt.TrtGraphConverterV2(input_saved_model_dir=model_dir,
                                        conversion_params=params)
    converter.convert()
    converter.build(input_fn=lambda: ({"image": inputs[i:i + b]} for b in (1, 8)
                                      for i in range(2)))
    converter.save(output_dir)
    report = converter.report()
    assert report.choice is not None
    held_out = {"image": trained_models.held_out(inputs)}
    tf.compat.v1.disable_eager_execution()
    scores, ran = [], collections.Counter[str]()
    for directory in (model_dir, output_dir):
        with ServingSession.load(pathlib.Path(directory)) as served:
            (output,) = served.run("serving_default", held_out).values()
            scores.append(np.asarray(output))
            if directory == output_dir:
                ran = collections.Counter(
                    node.op for graph in served.traced_run(
                        "serving_default", {"image": inputs[:8]}).partition_graphs
                    for node in graph.node)
    return {
        "precision": [report.precision, report.precision_reason],
        "chosen": report.choice.chosen,
        "candidates": {c.name: {"precision": c.precision, "failure": c.failure,
                                "worst_error": c.worst_error, "note": c.note,
                                "description": c.description}
                       for c in report.choice.candidates},
        "agreement": float(np.mean(scores[0].argmax(1) == scores[1].argmax(1))),
        "ran": ran,
    }
