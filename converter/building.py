"""`build()`: observe the shapes each segment sees, compile and measure engines,
and keep those that make the whole signature faster on this device."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from converter.backends.xla import signature_caller
from converter.engines import EngineKey, measure_engine, median_call_seconds
from converter.graph.dispatch import DispatchPlan, Fallback, ShapeSet
from converter.segments import ConvertedSegment


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


def _observe(
    segments: list[ConvertedSegment], probe: Any, inputs: Iterable[dict[str, tf.Tensor]]
) -> tuple[list[_Seen], list[dict[str, tf.Tensor]]]:
    seen = [_Seen() for _ in segments]
    feeds: list[dict[str, tf.Tensor]] = []
    for feed in inputs:
        feeds.append(feed)
        values = list(probe(*feed.values())) if probe is not None else []
        for segment, record in zip(segments, seen, strict=True):
            count = len(segment.graph.input_specs)
            args, values = values[:count], values[count:]
            shapes = tuple(tuple(args[i].shape.as_list()) for i in segment.graph.shape_inputs)
            record.counts[shapes] += 1
            record.examples.setdefault(shapes, (args, len(feeds) - 1))
    return seen, feeds


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
    original: Any,
    assemble: Callable[[], Any],
) -> BuildResult:
    """Measure each segment's most frequent shapes, then confirm on the whole
    signature: a kept engine also pays for its dispatch (shape check, call),
    which a tiny segment may not earn back."""
    seen, feeds = _observe(segments, probe, inputs)
    origins: dict[int, list[tuple[ConvertedSegment, int]]] = collections.defaultdict(list)
    for segment, record in zip(segments, seen, strict=True):
        for shapes, uses in record.counts.most_common(maximum_cached_engines):
            args, origin = record.examples[shapes]
            measured = measure_engine(key_for(segment, shapes), uses, segment.engine,
                                      segment.native, args, tolerance[segment.precision],
                                      keep_slower=keep_slower_engines)
            segment.records.append(measured)
            if measured.kept:
                origins[origin].append((segment, len(segment.records) - 1))
        _replan(segment, allow_build_at_runtime)
    specs = {name: tf.TensorSpec(None, t.dtype) for name, t in feeds[0].items()}
    for origin, engines in list(origins.items()):
        if keep_slower_engines:
            break
        converted_seconds, original_seconds = median_call_seconds(
            [signature_caller(assemble(), specs), signature_caller(original, specs)],
            list(feeds[origin].values()))
        if converted_seconds < original_seconds:
            continue
        for segment, position in engines:
            segment.records[position] = dataclasses.replace(
                segment.records[position], kept=False,
                reason=(f"dropped: with its dispatch the signature took "
                        f"{converted_seconds * 1e3:.3f} ms vs {original_seconds * 1e3:.3f} ms "
                        "native"))
            _replan(segment, allow_build_at_runtime)
        del origins[origin]
    exported = [{k: v.numpy() for k, v in feeds[i].items()} for i in sorted(origins)]
    return BuildResult(inputs_to_export=exported or [
        {k: v.numpy() for k, v in feeds[0].items()}])
