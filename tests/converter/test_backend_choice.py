"""Backend choice, TF-TRT's parameters and errors, and the tensorrt report: the parts
of the tensorrt backend that run on any TensorFlow. Tests that run TF-TRT itself
are in tests/converter/tensorrt (marker `tensorrt`)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2, graph_pb2, types_pb2
from tensorflow.python.compiler.tensorrt import trt_convert

import converter as trt
from converter.backend import (
    BackendChoice,
    TensorrtRuntime,
    choose_backend,
    detect_tensorrt_runtime,
    resolve_backend,
)
from converter.savedmodel.loading import load_signature
from converter.savedmodel.synthetic import batch_input_fn
from converter.tensorrt.conversion import (
    PROFILE_STRATEGIES,
    check_calibration,
    needs_calibration,
    tftrt_keywords,
)
from converter.tensorrt.report import LEFT_NATIVE, tftrt_report

READY = TensorrtRuntime("2.17.1", tensorrt_build=True, gpus=1,
                        linked_tensorrt=(8, 6, 1), loaded_tensorrt=(8, 6, 1))
"""The facts of a TF 2.17 GPU machine with its TensorRT installed."""

MISSING = "TensorFlow 2.21.0 was not built with TensorRT"
CAN_RUN = "auto: TF-TRT can run here (TensorRT build, GPU visible)"


def _params(**changes: Any) -> trt.ConversionParams:
    return trt.ConversionParams(**changes)


# -- is TF-TRT usable: the facts and TF-TRT's own version rules -------------------------


def test_runtime_with_tensorrt_and_a_gpu_has_no_problem() -> None:
    assert READY.problem() is None
    newer_patch = TensorrtRuntime("2.17.1", True, 1, (8, 6, 1), (8, 6, 3))
    assert newer_patch.problem() is None


@pytest.mark.parametrize(("runtime", "words"), [
    (TensorrtRuntime("2.21.0", False, 1, (0, 0, 0), (0, 0, 0)),
     ["TensorFlow 2.21.0", "not built with TensorRT", "2.18"]),
    (TensorrtRuntime("2.17.1", True, 0, (0, 0, 0), (0, 0, 0)),
     ["no GPU", "2.17.1"]),
    (TensorrtRuntime("2.17.1", True, 2, (8, 6, 1), (0, 0, 0)),
     ["libnvinfer", "install TensorRT 8.6.1"]),
    (TensorrtRuntime("2.17.1", True, 1, (8, 6, 1), (10, 0, 0)),
     ["built with TensorRT 8.6.1", "loaded TensorRT 10.0.0", "same major"]),
    (TensorrtRuntime("2.17.1", True, 1, (8, 6, 1), (8, 5, 3)),
     ["loaded TensorRT 8.5.3", "no older"]),
])
def test_runtime_problems_say_what_is_missing(runtime: TensorrtRuntime, words: list[str]) -> None:
    problem = runtime.problem()
    assert problem is not None
    for word in words:
        assert word in problem


def test_this_machine_is_read_as_it_is() -> None:
    runtime = detect_tensorrt_runtime()
    assert runtime.tensorflow_version == tf.__version__
    assert runtime.tensorrt_build == bool(tf.sysconfig.get_build_info().get("is_tensorrt_build"))
    assert runtime.gpus == len(tf.config.list_physical_devices("GPU"))
    if runtime.problem() is None:
        assert runtime.loaded_tensorrt >= (7, 0, 0)
    else:  # TF 2.21 here: no TensorRT, so auto compiles with XLA and says why
        choice = choose_backend(_params())
        assert choice.name == "xla"
        assert choice.reason == f"auto: TF-TRT unavailable ({runtime.problem()})"


# -- which backend, given whether TF-TRT can run ------------------------------------------


@pytest.mark.parametrize(("changes", "problem", "expected"), [
    ({}, None, BackendChoice("tensorrt", CAN_RUN)),
    ({}, MISSING, BackendChoice("xla", f"auto: TF-TRT unavailable ({MISSING})")),
    ({"backend": "tensorrt"}, None, BackendChoice("tensorrt", "requested")),
    ({"backend": "xla"}, None, BackendChoice("xla", "requested")),
    ({"backend": "xla"}, MISSING, BackendChoice("xla", "requested")),
    ({"precision_mode": "INT8"}, None, BackendChoice("tensorrt", CAN_RUN)),
    ({"precision_mode": "INT8", "backend": "tensorrt"}, None,
     BackendChoice("tensorrt", "requested")),
    # The xla backend's INT8 is oneDNN's; the build device decides (test_int8.py).
    ({"precision_mode": "INT8", "backend": "xla"}, None, BackendChoice("xla", "requested")),
    ({"precision_mode": "INT8"}, MISSING, BackendChoice(
        "xla", f"auto: TF-TRT unavailable ({MISSING})")),
    ({"keep_slower_engines": True}, None, BackendChoice(
        "xla", "auto: keep_slower_engines=True is an xla setting (TF-TRT does not time "
        "engines against native TensorFlow)")),
    ({"keep_slower_engines": True, "backend": "xla"}, None, BackendChoice("xla", "requested")),
    ({"precision_mode": "BF16"}, None, BackendChoice(
        "xla", "auto: BF16 is not a TF-TRT precision")),
])
def test_backend_resolution(changes: dict[str, Any], problem: str | None,
                            expected: BackendChoice) -> None:
    assert resolve_backend(_params(**changes), problem) == expected


def test_tensorrt_where_it_cannot_run_names_version_reason_and_ways_out() -> None:
    with pytest.raises(trt.BackendUnavailableError) as raised:
        resolve_backend(_params(backend="tensorrt"), MISSING)
    message = str(raised.value)
    assert MISSING in message
    assert "backend='xla'" in message and "TensorFlow 2.17 with a GPU" in message
    assert isinstance(raised.value, RuntimeError)


def test_bf16_with_tensorrt_is_refused_naming_the_ways_out() -> None:
    with pytest.raises(trt.InvalidParameterError, match=r"'BF16' is not a TF-TRT precision"
                       r".*precision_mode='FP16' with backend='tensorrt'"):
        resolve_backend(_params(precision_mode="bf16", backend="tensorrt"), None)


@pytest.mark.parametrize("changes", [
    {"backend": "tensorrt"},
    {"backend": "auto", "precision_mode": "INT8"},  # only TF-TRT has INT8
])
def test_keep_slower_engines_is_refused_with_tensorrt(changes: dict[str, Any]) -> None:
    with pytest.raises(trt.InvalidParameterError) as raised:
        resolve_backend(_params(keep_slower_engines=True, **changes), None)
    message = str(raised.value)
    assert "keep_slower_engines=True" in message and "backend='xla'" in message


# -- our parameters as TF-TRT's -------------------------------------------------------------


def test_default_parameters_map_onto_tf_trt_defaults() -> None:
    keywords = tftrt_keywords(_params())
    assert keywords == {
        "max_workspace_size_bytes": 1 << 30, "precision_mode": "FP32",
        "minimum_segment_size": 3, "maximum_cached_engines": 1, "use_calibration": True,
        "allow_build_at_runtime": True, "use_dynamic_shape": None,
        "dynamic_shape_profile_strategy": None,
    }
    # TF-TRT's own defaults, read from the trt_convert.py this TensorFlow ships
    # (identical to 2.17.1's). Its workspace default is 1 GiB without TensorRT and
    # no practical limit with TensorRT >= 8.4; ours stays 1 GiB, passed explicitly.
    ours = {k: v for k, v in keywords.items() if k in trt_convert.TrtConversionParams._fields}
    theirs = trt_convert.TrtConversionParams()._asdict()
    assert theirs.pop("max_workspace_size_bytes") >= 1 << 30
    assert ours == {**theirs, "max_workspace_size_bytes": 1 << 30}


def test_every_keyword_is_a_tf_trt_constructor_parameter() -> None:
    import inspect

    taken = inspect.signature(trt_convert.TrtGraphConverterV2.__init__).parameters
    keywords = tftrt_keywords(_params(), use_dynamic_shape=True,
                              dynamic_shape_profile_strategy="Optimal")
    assert set(keywords) <= set(taken)
    assert tuple(trt_convert.supported_profile_strategies()) == PROFILE_STRATEGIES


def test_set_parameters_pass_through() -> None:
    params = _params(precision_mode="INT8", max_workspace_size_bytes=1 << 32,
                     minimum_segment_size=5, maximum_cached_engines=4, use_calibration=False,
                     allow_build_at_runtime=False, backend="tensorrt")
    keywords = tftrt_keywords(params, use_dynamic_shape=True,
                              dynamic_shape_profile_strategy="range+optimal")
    assert keywords == {
        "max_workspace_size_bytes": 1 << 32, "precision_mode": "INT8",
        "minimum_segment_size": 5, "maximum_cached_engines": 4, "use_calibration": False,
        "allow_build_at_runtime": False, "use_dynamic_shape": True,
        "dynamic_shape_profile_strategy": "range+optimal",
    }


def test_unknown_profile_strategy_is_a_value_error_listing_the_strategies() -> None:
    with pytest.raises(ValueError, match="dynamic_shape_profile_strategy='Fastest'") as raised:
        tftrt_keywords(_params(), use_dynamic_shape=True, dynamic_shape_profile_strategy="Fastest")
    assert "Range+Optimal" in str(raised.value)


# -- INT8 calibration, as TF-TRT's convert() checks it ------------------------------------


def _calibration() -> Any:
    yield (np.zeros((1, 16), np.float32),)


def test_int8_with_calibration_needs_calibration_input_fn() -> None:
    params = _params(precision_mode="INT8", backend="tensorrt")
    assert needs_calibration(params)
    with pytest.raises(ValueError, match="needs calibration_input_fn") as raised:
        check_calibration(params, None)
    assert "use_calibration=False" in str(raised.value)
    check_calibration(params, _calibration)


@pytest.mark.parametrize("changes", [
    {"precision_mode": "INT8", "use_calibration": False},
    {"precision_mode": "FP16"},
    {"precision_mode": "FP32"},
])
def test_calibration_input_fn_where_nothing_calibrates_is_a_value_error(
        changes: dict[str, Any]) -> None:
    params = _params(backend="tensorrt", **changes)
    assert not needs_calibration(params)
    check_calibration(params, None)
    with pytest.raises(ValueError, match="calibration_input_fn is only used"):
        check_calibration(params, _calibration)


# -- the report of a TF-TRT conversion ------------------------------------------------------


def _tftrt_style_graph() -> graph_pb2.GraphDef:
    """Test double for TF-TRT's output, which cannot be produced here: a hand-written
    GraphDef in the layout TF-TRT 2.17 gives (one TRTEngineOp, its native segment
    as the library function `<node>_native_segment`, the rest native)."""
    graph = graph_pb2.GraphDef()
    graph.node.add(name="x", op="Placeholder")
    graph.node.add(name="w", op="Const")
    engine = graph.node.add(name="TRTEngineOp_000_000", op="TRTEngineOp", input=["x", "^w"])
    engine.attr["segment_func"].func.name = "TRTEngineOp_000_000_native_segment"
    engine.attr["InT"].list.type.append(types_pb2.DT_FLOAT)
    engine.attr["OutT"].list.type.append(types_pb2.DT_FLOAT)
    engine.attr["input_shapes"].list.shape.append(tf.TensorShape([None, 16]).as_proto())
    engine.attr["precision_mode"].CopyFrom(attr_value_pb2.AttrValue(s=b"FP16"))
    graph.node.add(name="Identity", op="Identity", input=["TRTEngineOp_000_000"])
    segment = graph.library.function.add()
    segment.signature.name = "TRTEngineOp_000_000_native_segment"
    for op in ("MatMul", "BiasAdd", "Relu", "MatMul", "BiasAdd", "Softmax"):
        segment.node_def.add(name=f"{op}_{len(segment.node_def)}", op=op)
    return graph


def test_report_reads_engines_and_native_ops_from_the_converted_graph(
        mlp_dir: pathlib.Path) -> None:
    report = tftrt_report(
        graph_def=_tftrt_style_graph(), loaded=load_signature(mlp_dir),
        params=_params(backend="tensorrt", precision_mode="FP16", allow_build_at_runtime=False),
        backend=BackendChoice("tensorrt", "requested"), device=trt.detect_build_device(),
        built=True, built_inputs=[[[1, 16]], [[8, 16]]],
    )
    assert (report.backend, report.backend_reason) == ("tensorrt", "requested")
    assert (report.total_ops, report.ops_in_segments) == (9, 6)
    assert report.native == {LEFT_NATIVE: {"Placeholder": 1, "Const": 1, "Identity": 1}}
    [segment] = report.segments
    assert segment.name == "TRTEngineOp_000_000"
    assert segment.ops == {"MatMul": 2, "BiasAdd": 2, "Relu": 1, "Softmax": 1}
    assert segment.inputs == ["x float32 ?x16"]
    assert segment.outputs == ["TRTEngineOp_000_000:0"]
    assert (segment.precision, segment.fallback, segment.inline) == ("FP16", "native", False)
    text = report.render(line_length=100)
    assert "backend tensorrt (requested)" in text
    assert "engines built by TF-TRT for: (1x16); (8x16); other shapes run native" in text
    assert json.loads(report.to_json())["built_inputs"] == [[[1, 16]], [[8, 16]]]


def test_report_of_a_graph_without_engines_has_nothing_to_compile(mlp_dir: pathlib.Path) -> None:
    graph = graph_pb2.GraphDef()
    graph.node.add(name="x", op="Placeholder")
    report = tftrt_report(
        graph_def=graph, loaded=load_signature(mlp_dir), params=_params(backend="tensorrt"),
        backend=BackendChoice("tensorrt", "requested"), device=trt.detect_build_device(),
        built=False, built_inputs=[],
    )
    assert report.nothing_to_compile
    assert "Nothing to compile" in report.render()


# -- the public Converter on this machine ---------------------------------------------------


@pytest.mark.skipif(detect_tensorrt_runtime().problem() is None,
                    reason="TF-TRT can run here; tests/converter/tensorrt covers auto there")
def test_auto_says_why_it_compiles_with_xla(mlp_dir: pathlib.Path) -> None:
    converter = trt.Converter(mlp_dir)
    converter.convert()
    converter.build(batch_input_fn(converter.input_specs, [2]))
    report = converter.report()
    assert report.backend == "xla"
    assert report.backend_reason.startswith("auto: TF-TRT unavailable (TensorFlow ")
    lines: list[str] = []
    converter.summary(print_fn=lines.append)
    assert any(line.startswith("backend xla (auto: TF-TRT unavailable") for line in lines)
    assert report.built_inputs == []
