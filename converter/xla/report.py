"""The report of an xla conversion: each segment with its boundary, engines and
dispatch, and every op left native with the reason."""

from __future__ import annotations

import collections
from collections.abc import Sequence

import tensorflow as tf

from converter.backend import BackendChoice
from converter.candidates import Choice
from converter.device import BuildDevice, PrecisionChoice
from converter.graph.inline import FlatGraph
from converter.params import ConversionParams
from converter.report import (
    ConversionReport,
    EngineReport,
    FreezeReport,
    SegmentReport,
    report_header,
    shape_text,
)
from converter.savedmodel.loading import LoadedSignature
from converter.xla.converted_segment import ConvertedSegment
from converter.xla.segment import Segmentation


def _dims(spec: tf.TensorSpec) -> list[int | None] | None:
    return None if spec.shape.rank is None else list(spec.shape.as_list())


def _segment_report(segment: ConvertedSegment, flat: FlatGraph) -> SegmentReport:
    graph = segment.graph
    ops = collections.Counter(flat.op_types[name] for name in graph.segment.nodes)
    engines = [
        EngineReport(
            shapes=[list(s) for s in r.key.shapes],
            precision=r.key.precision,
            uses=r.uses,
            compile_seconds=r.compile_seconds,
            engine_ms=r.engine_seconds * 1e3,
            native_ms=r.native_seconds * 1e3,
            speedup=r.speedup,
            error=r.error,
            kept=r.kept,
            reason=r.reason,
            key=r.key.describe(),
        )
        for r in segment.records
    ]
    specs = graph.input_specs
    return SegmentReport(
        name=graph.segment.name,
        ops=dict(ops),
        inputs=[f"{name} {spec.dtype.name} {shape_text(_dims(spec))}"
                for name, spec in zip(graph.segment.inputs, specs, strict=True)],
        outputs=list(graph.segment.outputs),
        shape_inputs=list(graph.shape_inputs),
        precision=segment.precision,
        note=segment.precision_note,
        prebuilt=[[list(s) for s in shape_set] for shape_set in segment.plan.prebuilt],
        fallback=segment.plan.fallback.value,
        inline=not segment.runs_engine,
        engines=engines,
    )


def build_report(
    *,
    loaded: LoadedSignature,
    params: ConversionParams,
    backend: BackendChoice,
    device: BuildDevice,
    flat: FlatGraph,
    segmentation: Segmentation,
    segments: Sequence[ConvertedSegment],
    built: bool,
    freezing: FreezeReport | None,
    choice: Choice | None,
    precision: PrecisionChoice | None = None,
) -> ConversionReport:
    """Collect the report from the converter's state."""
    native: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for name, reason in segmentation.native.items():
        native[reason][flat.op_types[name]] += 1
    return ConversionReport(
        **report_header(loaded.directory, loaded.key, params, backend, device, precision),
        total_ops=len(flat.graph_def.node),
        ops_in_segments=sum(len(s.graph.segment.nodes) for s in segments),
        segments=[_segment_report(s, flat) for s in segments],
        native={reason: dict(ops) for reason, ops in native.items()},
        built=built,
        freezing=freezing,
        choice=choice,
    )
