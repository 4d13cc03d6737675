"""A segment's functions, its engines' records and its dispatch plan.

An engine is the segment under `tf.function(jit_compile=True)`: XLA compiles it once
per distinct input shape. Its native twin takes the same call path uncompiled, so
timings compare like with like.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from converter.params import Fallback, TrtPrecisionMode
from converter.xla.dispatch import DispatchPlan, dispatch_function
from converter.xla.engine_timing import EngineRecord
from converter.xla.extract import SegmentGraph
from converter.xla.half import half_precision


def _traced(body: Any, input_specs: Sequence[tf.TensorSpec], jit_compile: bool) -> Any:
    def call(*args: tf.Tensor) -> Any:
        return body(*args)

    return tf.function(call, jit_compile=jit_compile, autograph=False).get_concrete_function(
        *input_specs
    )


@dataclasses.dataclass
class ConvertedSegment:
    """One segment as the converter carries it from convert() to save()."""

    graph: SegmentGraph
    native: Any
    """The plain TensorFlow segment (ConcreteFunction)."""
    engine: Any
    """The compiled segment (ConcreteFunction with jit_compile)."""
    precision: str
    """The precision its engine really computes in (FP16 may fall back to FP32)."""
    precision_note: str
    plan: DispatchPlan
    records: list[EngineRecord] = dataclasses.field(default_factory=list)

    @property
    def runs_engine(self) -> bool:
        """Whether any shape may run the engine (else the segment stays inline)."""
        return bool(self.plan.prebuilt) or self.plan.fallback is Fallback.ENGINE

    def drop_engines(self, reason: str) -> None:
        """Keep no engine (another candidate won): the segment stays inline, native."""
        self.records = [dataclasses.replace(r, kept=False, reason=reason) if r.kept else r
                        for r in self.records]
        self.plan = DispatchPlan(prebuilt=(), fallback=Fallback.NATIVE)

    def dispatch(self) -> Any:
        """The ConcreteFunction that stands in the converted graph for this segment."""
        return dispatch_function(
            f"tftrt_{self.graph.segment.name}",
            self.graph.input_specs,
            self.graph.shape_inputs,
            self.engine,
            self.native,
            self.plan,
        )


def convert_segment(
    graph: SegmentGraph, precision: str, allow_build_at_runtime: bool
) -> ConvertedSegment:
    """The native and engine functions of one segment, before any engine is built."""
    body = graph.native_function()
    engine_body, used, note = body, TrtPrecisionMode.FP32, ""
    if precision == TrtPrecisionMode.FP16:
        half = half_precision(graph)
        if isinstance(half, str):
            note = half
        else:
            engine_body, used = graph.function_of(*half), TrtPrecisionMode.FP16
    fallback = Fallback.ENGINE if allow_build_at_runtime else Fallback.NATIVE
    return ConvertedSegment(
        graph=graph,
        native=_traced(body, graph.input_specs, jit_compile=False),
        engine=_traced(engine_body, graph.input_specs, jit_compile=True),
        precision=used,
        precision_note=note,
        plan=DispatchPlan(prebuilt=(), fallback=fallback),
    )
