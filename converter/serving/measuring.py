"""How outputs and calls are compared, wherever a model or a segment is measured: the
scaled error against expected outputs (held to `params.TOLERANCE`), and the median call
time of sides timed in interleaved rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

# How long to time each side of one comparison, and the bounds on repetitions.
_TIMING_SECONDS = 0.3
_MIN_ROUNDS = 5
_MAX_CALLS = 200
_WARMUP_CALLS = 2
# After this many rounds, a side this many times slower than the other has lost.
_DECISIVE_ROUNDS = 2
_DECISIVE_RATIO = 1.5


def scaled_error(produced: Sequence[np.ndarray], expected: Sequence[np.ndarray]) -> float:
    """Largest |produced - expected| over all outputs, divided by 1 + the largest
    finite |expected| of that output. NaN where both are NaN counts as equal, NaN
    on one side as an infinite error; non-numeric outputs and shapes must match."""
    worst = 0.0
    for got, want in zip(produced, expected, strict=True):
        got, want = np.asarray(got), np.asarray(want)
        if got.shape != want.shape:
            return float("inf")
        if want.dtype.kind not in "fc":
            if not np.array_equal(got, want):
                return float("inf")
            continue
        if want.size == 0:
            continue
        got64, want64 = got.astype(np.float64), want.astype(np.float64)
        same = (got64 == want64) | (np.isnan(got64) & np.isnan(want64))
        with np.errstate(invalid="ignore"):
            difference = np.where(same, 0.0, np.abs(got64 - want64))
        if np.isnan(difference).any():
            return float("inf")
        finite = np.abs(want64[np.isfinite(want64)])
        scale = 1.0 + (float(finite.max()) if finite.size else 0.0)
        worst = max(worst, float(difference.max()) / scale)
    return worst


Arguments = Sequence[tf.Tensor] | Mapping[str, tf.Tensor]


def call_outputs(function: Callable[..., Any], args: Arguments) -> list[np.ndarray]:
    """`function`'s outputs on `args` (positional or by name), flattened, as arrays."""
    outputs = function(**args) if isinstance(args, Mapping) else function(*args)
    return [np.asarray(t) for t in tf.nest.flatten(outputs)]


def median_call_seconds(sides: Sequence[Callable[..., Any]], args: Arguments,
                        seconds_per_side: float = _TIMING_SECONDS,
                        decisive_rounds: int = _DECISIVE_ROUNDS) -> list[float]:
    """Median per-call time of each side, timed in interleaved rounds so that
    drift in machine load affects all alike. A side that is decisively slower
    than the best after `decisive_rounds` stops being timed; the others go on."""
    for side in sides:  # first calls instantiate functions (and compile engines)
        for _ in range(_WARMUP_CALLS):
            call_outputs(side, args)
    samples: list[list[float]] = [[] for _ in sides]
    active = list(range(len(sides)))
    deadline = time.perf_counter() + seconds_per_side * len(sides)
    calls = 0
    while calls < _MAX_CALLS and (calls < _MIN_ROUNDS or time.perf_counter() < deadline):
        for index in active:
            start = time.perf_counter()
            call_outputs(sides[index], args)
            samples[index].append(time.perf_counter() - start)
        calls += 1
        if calls >= decisive_rounds:
            best = min(statistics.median(samples[i]) for i in active)
            active = [i for i in active
                      if statistics.median(samples[i]) <= _DECISIVE_RATIO * best]
            if len(active) == 1 and len(sides) > 1:
                break
    return [statistics.median(bucket) for bucket in samples]
