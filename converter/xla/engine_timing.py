"""Timing an engine: one segment compiled for one input-shape set, measured against
native by interleaved calls (`serving.measuring`); the key naming it and the record of
its measurement."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from converter.serving.measuring import call_outputs, median_call_seconds, scaled_error
from converter.xla.dispatch import ShapeSet


@dataclasses.dataclass(frozen=True)
class EngineKey:
    """Every field that changes an engine's compiled code."""

    segment: str
    fingerprint: str
    """Digest of the segment's graph (ops, attributes, weights' shapes)."""
    shapes: ShapeSet
    dtypes: tuple[str, ...]
    precision: str
    backend: str
    device: str
    tensorflow: str

    def describe(self) -> str:
        """A one-line, human-readable form of the key."""
        shapes = ", ".join("x".join(str(d) for d in s) or "scalar" for s in self.shapes)
        return f"{self.segment}[{shapes}] {self.precision} {self.backend}@{self.device}"


@dataclasses.dataclass(frozen=True)
class EngineRecord:
    """What `build()` learned about one engine."""

    key: EngineKey
    uses: int
    """How many `input_fn` inputs had this shape set."""
    compile_seconds: float
    engine_seconds: float
    """Median wall time of one engine call."""
    native_seconds: float
    """Median wall time of one native-segment call on the same inputs."""
    error: float
    """Largest |engine - native| over all outputs, divided by 1 + the largest |native|."""
    kept: bool
    reason: str

    @property
    def speedup(self) -> float:
        """Native time over engine time: above 1 means the engine is faster."""
        return self.native_seconds / self.engine_seconds if self.engine_seconds else 0.0


def measure_engine(
    key: EngineKey,
    uses: int,
    engine: Callable[..., Any],
    native: Callable[..., Any],
    args: Sequence[tf.Tensor],
    tolerance: float,
    keep_slower: bool = False,
) -> EngineRecord:
    """Compile `engine` for `args`' shapes, check it against `native`, time both."""
    expected = call_outputs(native, args)
    start = time.perf_counter()
    produced = call_outputs(engine, args)
    compile_seconds = time.perf_counter() - start
    error = scaled_error(produced, expected)
    engine_seconds, native_seconds = median_call_seconds([engine, native], args)
    if not error <= tolerance:
        kept, reason = False, f"dropped: error {error:.3g} exceeds {tolerance:g}"
    elif engine_seconds < native_seconds:
        kept, reason = True, "kept: faster than native"
    elif keep_slower:
        kept, reason = True, "kept (keep_slower_engines): not faster than native here"
    else:
        kept, reason = False, "dropped: not faster than native on this device"
    return EngineRecord(
        key=key,
        uses=uses,
        compile_seconds=compile_seconds,
        engine_seconds=engine_seconds,
        native_seconds=native_seconds,
        error=error,
        kept=kept,
        reason=reason,
    )
