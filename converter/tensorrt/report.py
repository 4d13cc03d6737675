"""The report of a TF-TRT conversion, read from the graph TF-TRT produced.

TF-TRT replaces each segment with a `TRTEngineOp` node whose `segment_func`
attribute names the native segment it replaced (a library function
`<node>_native_segment`); the ops inside that function are the ops the engine
runs. Every other node of the graph stayed native TensorFlow.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from converter.backend import BackendChoice
from converter.device import BuildDevice
from converter.graph.names import is_control_input
from converter.params import ConversionParams, Fallback
from converter.report import ConversionReport, SegmentReport, report_header, shape_text
from converter.savedmodel.loading import LoadedSignature

ENGINE_OP = "TRTEngineOp"

LEFT_NATIVE = "not converted by TF-TRT (its conversion log says why, op by op)"
"""TF-TRT gives no per-op reason through its Python API."""

ENGINE_NOTE = "TensorRT engine; TF-TRT builds it for the shapes build() runs, untimed"


def _dtype_names(attr: Any) -> list[str]:
    return [tf.dtypes.as_dtype(t).name for t in attr.list.type]


def _shape_texts(attr: Any, count: int) -> list[str]:
    shapes = [tf.TensorShape(s) for s in attr.list.shape]
    texts = [shape_text(None if s.rank is None else s.as_list()) for s in shapes]
    return texts + ["?"] * (count - len(texts))


def _segment_ops(graph_def: Any, node: Any) -> dict[str, int]:
    """Op types in the native segment an engine replaced, by count."""
    names = {node.attr["segment_func"].func.name, f"{node.name}_native_segment"} - {""}
    for function in graph_def.library.function:
        if function.signature.name in names:
            return dict(collections.Counter(n.op for n in function.node_def))
    return {}


def _engine_segment(graph_def: Any, node: Any, allow_build_at_runtime: bool) -> SegmentReport:
    data_inputs = [name for name in node.input if not is_control_input(name)]
    in_types, out_types = _dtype_names(node.attr["InT"]), _dtype_names(node.attr["OutT"])
    in_shapes = _shape_texts(node.attr["input_shapes"], len(in_types))
    precision = node.attr["precision_mode"].s.decode() if "precision_mode" in node.attr else ""
    return SegmentReport(
        name=node.name,
        ops=_segment_ops(graph_def, node),
        inputs=[f"{name} {dtype} {shape}"
                for name, dtype, shape in zip(data_inputs, in_types, in_shapes, strict=False)],
        outputs=[f"{node.name}:{i}" for i in range(len(out_types))],
        shape_inputs=[],
        precision=precision,
        note=ENGINE_NOTE,
        prebuilt=[],
        fallback=(Fallback.ENGINE if allow_build_at_runtime else Fallback.NATIVE).value,
        inline=False,
        engines=[],
    )


def tftrt_report(
    *,
    graph_def: Any,
    loaded: LoadedSignature,
    params: ConversionParams,
    backend: BackendChoice,
    device: BuildDevice,
    built: bool,
    built_inputs: Sequence[Sequence[Sequence[int]]],
) -> ConversionReport:
    """The report of a conversion TF-TRT did, from its converted GraphDef."""
    engines = [n for n in graph_def.node if n.op == ENGINE_OP]
    native = collections.Counter(n.op for n in graph_def.node if n.op != ENGINE_OP)
    segments = [_engine_segment(graph_def, n, params.allow_build_at_runtime)
                for n in sorted(engines, key=lambda n: n.name)]
    in_engines = sum(sum(s.ops.values()) for s in segments)
    return ConversionReport(
        **report_header(loaded.directory, loaded.key, params, backend, device),
        total_ops=sum(native.values()) + in_engines,
        ops_in_segments=in_engines,
        segments=segments,
        native={LEFT_NATIVE: dict(native)} if native else {},
        built=built,
        built_inputs=[[list(shape) for shape in shape_set] for shape_set in built_inputs],
    )
