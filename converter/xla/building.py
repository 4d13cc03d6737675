"""`build()`: observe the shapes each segment sees, compile and measure engines,
and keep those that make the whole signature faster on this device."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from converter.params import Fallback
from converter.xla.converted_segment import ConvertedSegment
from converter.xla.dispatch import DispatchPlan, ShapeSet
from converter.xla.engine_timing import EngineKey, measure_engine


@dataclasses.dataclass
class _Seen:
    """What one segment saw across the inputs."""

    counts: collections.Counter[ShapeSet] = dataclasses.field(
        default_factory=collections.Counter)
    examples: dict[ShapeSet, tuple[list[tf.Tensor], int]] = dataclasses.field(
        default_factory=dict)
    """Shape set -> the segment's arguments the first time, and which input gave them."""


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """What `build_engines` leaves for `save()`."""

    inputs_to_export: list[dict[str, np.ndarray]]
    """Signature inputs whose shapes have kept engines (else one input, so that
    save() still proves the model in the Session path)."""


def _segment_arguments(segments: list[ConvertedSegment], probe: Any,
                       feed: Mapping[str, Any]) -> list[tuple[list[tf.Tensor], ShapeSet]]:
    """Each segment's arguments for one signature input, and their shape set."""
    values = list(probe(*map(tf.convert_to_tensor, feed.values()))) if probe is not None else []
    arguments = []
    for segment in segments:
        count = len(segment.graph.input_specs)
        args, values = values[:count], values[count:]
        shapes = tuple(tuple(args[i].shape.as_list()) for i in segment.graph.shape_inputs)
        arguments.append((args, shapes))
    return arguments


def _observe(
    segments: list[ConvertedSegment], probe: Any, inputs: Iterable[dict[str, tf.Tensor]]
) -> tuple[list[_Seen], list[dict[str, tf.Tensor]]]:
    seen = [_Seen() for _ in segments]
    feeds: list[dict[str, tf.Tensor]] = []
    for feed in inputs:
        feeds.append(feed)
        for (args, shapes), record in zip(_segment_arguments(segments, probe, feed), seen,
                                          strict=True):
            record.counts[shapes] += 1
            record.examples.setdefault(shapes, (args, len(feeds) - 1))
    return seen, feeds


def restrict_engines(segments: list[ConvertedSegment], probe: Any,
                     winning: Sequence[Mapping[str, Any]], maximum_cached_engines: int) -> None:
    """Engines only for the shapes the `winning` signature inputs give each segment
    (where the engines won in the Session path); every other shape runs native."""
    per_input = [_segment_arguments(segments, probe, feed) for feed in winning]
    for index, segment in enumerate(segments):
        wanted = tuple(dict.fromkeys(shapes[index][1] for shapes in per_input))
        wanted = wanted[:maximum_cached_engines]
        segment.records = [
            dataclasses.replace(r, kept=True, reason="kept: won in the Session path")
            if r.key.shapes in wanted else
            dataclasses.replace(r, kept=False, reason="dropped: lost in the Session path")
            for r in segment.records
        ]
        segment.plan = DispatchPlan(prebuilt=wanted, fallback=Fallback.NATIVE)


def _replan(segment: ConvertedSegment, allow_build_at_runtime: bool) -> None:
    prebuilt = tuple(r.key.shapes for r in segment.records if r.kept)
    lost = bool(segment.records) and not prebuilt
    runtime = Fallback.ENGINE if allow_build_at_runtime and not lost else Fallback.NATIVE
    segment.plan = DispatchPlan(prebuilt=prebuilt, fallback=runtime)


def build_engines(
    *,
    segments: list[ConvertedSegment],
    probe: Any,
    inputs: Iterable[dict[str, tf.Tensor]],
    maximum_cached_engines: int,
    allow_build_at_runtime: bool,
    keep_slower_engines: bool,
    tolerance: Mapping[str, float],
    key_for: Callable[[ConvertedSegment, ShapeSet], EngineKey],
) -> BuildResult:
    """Measure each segment's most frequent shapes against its native ops. Whether
    the engines pay for their dispatch (shape check, call) is decided afterwards,
    on the whole signature in the Session path (`candidates.select`): eager timings of
    the dispatch overstate it (measured: 3.0 ms eager where the Session ran 1.1 ms)."""
    seen, feeds = _observe(segments, probe, inputs)
    origins: set[int] = set()
    for segment, record in zip(segments, seen, strict=True):
        for shapes, uses in record.counts.most_common(maximum_cached_engines):
            args, origin = record.examples[shapes]
            measured = measure_engine(key_for(segment, shapes), uses, segment.engine,
                                      segment.native, args, tolerance[segment.precision],
                                      keep_slower=keep_slower_engines)
            segment.records.append(measured)
            if measured.kept:
                origins.add(origin)
        _replan(segment, allow_build_at_runtime)
    exported = [{k: v.numpy() for k, v in feeds[i].items()} for i in sorted(origins)]
    return BuildResult(inputs_to_export=exported or [
        {k: v.numpy() for k, v in feeds[0].items()}])
