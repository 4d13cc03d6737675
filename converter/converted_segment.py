"""A segment's functions, its engines' records and its dispatch plan."""

from __future__ import annotations

import dataclasses
from typing import Any

from converter.backends.xla import engine_function, native_function
from converter.engine_timing import EngineRecord
from converter.graph.dispatch import DispatchPlan, Fallback, dispatch_function
from converter.graph.extract import SegmentGraph
from converter.graph.half import half_precision
from converter.params import TrtPrecisionMode


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
        native=native_function(body, graph.input_specs),
        engine=engine_function(engine_body, graph.input_specs),
        precision=used,
        precision_note=note,
        plan=DispatchPlan(prebuilt=(), fallback=fallback),
    )
