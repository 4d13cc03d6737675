"""BF16: FP16 on a CPU with native bfloat16 (and BF16 by name) adds a candidate that
computes in bfloat16 with float32 at the signature, measured in a TF1 Session against
the FP32 candidates; on a CPU without bf16, FP16 stays half precision in XLA segments.

This machine's own CPU need not have bf16: the device is built from injected CPU flags
(`detect_build_device(flags=...)`); Grappler's rewrite runs in a child process with
oneDNN on either way, and the rewritten model runs wherever TensorFlow runs."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.python.saved_model import loader_impl

import converter as trt
from converter.candidates import FROZEN_BF16, CandidateReport
from converter.device import choose_precision, detect_build_device
from converter.params import TOLERANCE
from converter.precision.bfloat16 import bfloat16_ops
from converter.report import ConversionReport
from converter.savedmodel.synthetic import batch_input_fn
from converter.serving.session import ServingSession

BF16_CPU = detect_build_device(flags={"avx2", "avx512f", "avx512_bf16"})
AMX_CPU = detect_build_device(flags={"avx2", "amx_tile", "amx_bf16"})
PLAIN_CPU = detect_build_device(flags={"avx2", "fma", "avx512f"})
GPU = trt.BuildDevice(kind="GPU", model="NVIDIA H100 sm90")


def _conv_net(directory: pathlib.Path) -> pathlib.Path:
    """Conv2D + batch norm + ReLU, a strided Conv2D, pooling and a Dense head."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3), name="image")
    hidden = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    hidden = keras.layers.ReLU()(keras.layers.BatchNormalization()(hidden))
    hidden = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(hidden)
    pooled = keras.layers.GlobalAveragePooling2D()(hidden)
    scores = keras.layers.Dense(10, activation="softmax", name="scores")(pooled)
    keras.Model(inputs, scores).export(str(directory), format="tf_saved_model", verbose=False)
    return directory


def _tf1_mlp(directory: pathlib.Path) -> pathlib.Path:
    """A TF1 Session-builder export: x @ W1 + b1, ReLU, @ W2, as variables."""
    rng = np.random.default_rng(4)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        w1 = tf.compat.v1.get_variable("w1", initializer=rng.standard_normal((8, 32),
                                                                             np.float32))
        b1 = tf.compat.v1.get_variable("b1", initializer=rng.standard_normal(32, np.float32))
        w2 = tf.compat.v1.get_variable("w2", initializer=rng.standard_normal((32, 4),
                                                                             np.float32))
        x = tf.compat.v1.placeholder(tf.float32, [None, 8], name="x")
        y = tf.identity(tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2), name="y")
        session.run(tf.compat.v1.global_variables_initializer())
        info = tf.compat.v1.saved_model.utils.build_tensor_info
        builder = tf.compat.v1.saved_model.Builder(str(directory))
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={
            "serving_default": tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
                {"x": info(x)}, {"y": info(y)}, "tensorflow/serving/predict")})
        builder.save()
    return directory


@pytest.fixture(scope="module")
def conv_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return _conv_net(tmp_path_factory.mktemp("conv") / "model")


def _bf16_ops_in(saved_model: pathlib.Path) -> dict[str, int]:
    """Op type -> how many nodes compute in bfloat16, over the graph and its functions."""
    graph_def = loader_impl.parse_saved_model(str(saved_model)).meta_graphs[0].graph_def
    counts: dict[str, int] = {}
    for nodes in [graph_def.node, *(f.node_def for f in graph_def.library.function)]:
        for node in nodes:
            if node.op != "Cast" and any(value.type == types_pb2.DT_BFLOAT16
                                         for value in node.attr.values()):
                counts[node.op] = counts.get(node.op, 0) + 1
    return counts


def _converted(source: pathlib.Path, device: trt.BuildDevice, precision: str,
               batches: tuple[int, ...] = (1, 8)) -> trt.Converter:
    converter = trt.Converter(str(source), precision_mode=precision, build_device=device)
    converter.convert()
    converter.build(batch_input_fn(converter.input_specs, list(batches)))
    return converter


def _check_candidate_in_session(converter: trt.Converter, source: pathlib.Path,
                                contracted: str) -> None:
    """The timed bf16 candidate: bfloat16 `contracted` ops inside, float32 at the
    signature, loads and runs in a TF1 Session within BF16's tolerance."""
    directory = converter._conversion._selection.directories[FROZEN_BF16]  # type: ignore[attr-defined]
    assert _bf16_ops_in(directory).get(contracted, 0) >= 1
    with ServingSession.load(directory) as served, ServingSession.load(source) as original:
        signature = served.signature_def("serving_default")
        assert {i.dtype for i in [*signature.inputs.values(), *signature.outputs.values()]} == {
            types_pb2.DT_FLOAT}
        (feed,) = batch_input_fn(converter.input_specs, [8], seed=5)()
        arrays = {name: np.asarray(value) for name, value in feed.items()}
        want = original.run("serving_default", arrays)
        assert {k: v.dtype for k, v in served.run("serving_default", arrays).items()} == {
            k: np.dtype(np.float32) for k in want}
        error = served.largest_error("serving_default", [arrays], [want])
    assert 0 < error <= TOLERANCE["BF16"]


def _bf16_row(report: ConversionReport) -> CandidateReport:
    assert report.choice is not None
    (row,) = [c for c in report.choice.candidates if c.name == FROZEN_BF16]
    return row


def test_precision_names_include_bf16_and_lowercase_as_tf_trt() -> None:
    modes = trt.TrtPrecisionMode.supported_precision_modes()
    assert modes == ["FP32", "FP16", "INT8", "BF16", "fp32", "fp16", "int8", "bf16"]
    assert trt.ConversionParams(precision_mode="bf16").precision_mode == "BF16"
    assert trt.ConversionParams(precision_mode="fp16").precision_mode == "FP16"
    with pytest.raises(trt.InvalidParameterError, match=r"precision_mode='BF8'.*'BF16'"):
        trt.ConversionParams(precision_mode="BF8")


def test_native_bf16_is_read_from_the_cpu_flags() -> None:
    assert (BF16_CPU.native_bf16, AMX_CPU.native_bf16, PLAIN_CPU.native_bf16) == (
        True, True, False)
    assert BF16_CPU.slug == PLAIN_CPU.slug  # the same CPU model: one engine namespace


@pytest.mark.parametrize(("requested", "device", "precision", "why"), [
    ("FP16", BF16_CPU, "BF16", "native bfloat16"),
    ("FP16", AMX_CPU, "BF16", "native bfloat16"),
    ("FP16", PLAIN_CPU, "FP16", "no native bfloat16 (no avx512_bf16 or amx_bf16 flag"),
    ("FP16", GPU, "FP16", "half precision"),
    ("BF16", BF16_CPU, "BF16", "requested"),
    ("BF16", PLAIN_CPU, "FP32", "no native bfloat16"),
    ("BF16", GPU, "FP32", "on a GPU ask for FP16"),
    ("FP32", BF16_CPU, "FP32", "requested"),
])
def test_what_each_precision_computes_in_on_each_device(
        requested: str, device: trt.BuildDevice, precision: str, why: str) -> None:
    choice = choose_precision(requested, device)
    assert choice.precision == precision and why in choice.reason


def test_fp16_on_a_bf16_cpu_adds_a_measured_bf16_candidate(
        mlp_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    converter = _converted(mlp_dir, BF16_CPU, "FP16")
    report = converter.report()
    assert (report.precision, report.params["precision_mode"]) == ("BF16", "FP16")
    row = _bf16_row(report)
    assert row.precision == "BF16" and row.failure is None
    assert len(row.latency_ms) == 2 and all(ms > 0 for ms in row.latency_ms)
    assert row.worst_error is not None and 0 < row.worst_error <= TOLERANCE["BF16"]
    # Its FP32 rivals stay in the choice, each held to its own precision's tolerance.
    assert report.choice is not None
    assert {c.name: c.precision for c in report.choice.candidates} == {
        "original": "FP32", "frozen": "FP32", "frozen+bf16": "BF16", "frozen+xla": "FP32"}
    summary = converter.summary(print_fn=lambda line: None)
    assert "precision FP16 -> BF16 (FP16 on a CPU with native bfloat16" in summary
    assert f"frozen+bf16 BF16 {row.latency_ms[0]:.3f}, {row.latency_ms[1]:.3f} ms" in summary
    _check_candidate_in_session(converter, mlp_dir, "MatMul")
    converter.save(tmp_path / "out")
    saved = ConversionReport.read(tmp_path / "out")
    assert saved is not None and _bf16_row(saved) == row
    assert saved.precision == "BF16"


def test_bf16_by_name_on_a_conv_net(conv_dir: pathlib.Path) -> None:
    converter = _converted(conv_dir, AMX_CPU, "bf16", batches=(2,))
    assert converter.params.precision_mode == "BF16"
    assert _bf16_row(converter.report()).precision == "BF16"
    _check_candidate_in_session(converter, conv_dir, "Conv2D")


def test_fp16_on_a_cpu_without_bf16_stays_half_precision_and_says_why(
        mlp_dir: pathlib.Path) -> None:
    converter = _converted(mlp_dir, PLAIN_CPU, "FP16")
    report = converter.report()
    assert report.precision == "FP16"
    assert "no native bfloat16" in report.precision_reason
    assert [s.precision for s in report.segments] == ["FP16"]  # as before: XLA in half
    assert report.choice is not None
    assert FROZEN_BF16 not in {c.name for c in report.choice.candidates}
    assert {c.name: c.precision for c in report.choice.candidates}["frozen+xla"] == "FP16"
    summary = converter.summary(print_fn=lambda line: None)
    assert "precision FP16 -> FP16 (this CPU has no native bfloat16" in summary


def test_bf16_on_a_tf1_export(tmp_path: pathlib.Path) -> None:
    source = _tf1_mlp(tmp_path / "tf1")
    converter = _converted(source, BF16_CPU, "BF16")
    row = _bf16_row(converter.report())
    assert row.precision == "BF16" and row.failure is None
    assert row.worst_error is not None and 0 < row.worst_error <= TOLERANCE["BF16"]
    directory = converter._conversion._selection.directories[FROZEN_BF16]  # type: ignore[attr-defined]
    assert _bf16_ops_in(directory).get("MatMul", 0) == 2
    with ServingSession.load(directory) as served:
        out = served.run("serving_default", {"x": np.ones((3, 8), np.float32)})
    assert out["y"].dtype == np.float32 and out["y"].shape == (3, 4)


def test_a_graph_with_nothing_to_compute_in_bf16_falls_back_to_fp32(
        tf1_dir: pathlib.Path) -> None:
    # y = a * x + b: no convolution or matmul, so Grappler converts nothing.
    converter = trt.Converter(str(tf1_dir), precision_mode="BF16", build_device=BF16_CPU)
    converter.convert()
    report = converter.report()
    assert report.precision == "FP32"
    assert "found no op to compute in bfloat16" in report.precision_reason


def test_bfloat16_ops_counts_only_computing_nodes() -> None:
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2, 2])
        product = tf.matmul(tf.cast(x, tf.bfloat16), tf.cast(x, tf.bfloat16))
        tf.cast(product, tf.float32)
    assert bfloat16_ops(graph.as_graph_def()) == 1
