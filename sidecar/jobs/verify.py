"""Comparing the converted model's outputs with the original's, within a tolerance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from converter import scaled_error
from sidecar.jobs.session_model import Arrays


@dataclass(frozen=True)
class Comparison:
    """How far the converted outputs are from the original's over every compared input."""

    compared: int
    """Inputs compared."""

    worst_error: float
    """Largest scaled error over all float outputs (0.0 when there were none)."""

    worst_output: str | None
    """The output with the largest error, or the first mismatching non-float output."""

    exact_mismatch: bool
    """A non-float output (integer, bool, string) or an output shape differed."""

    tolerance: float
    """The largest scaled error accepted."""

    @property
    def matches(self) -> bool:
        """True when every output is within the tolerance."""
        return not self.exact_mismatch and self.worst_error <= self.tolerance

    def describe(self) -> str:
        """One line for logs and the journal."""
        if self.exact_mismatch:
            return (f"output {self.worst_output!r} differs exactly (shape or non-float values) "
                    f"on {self.compared} compared input(s)")
        return (f"largest scaled error {self.worst_error:.3g} (output {self.worst_output!r}) "
                f"against a tolerance of {self.tolerance:g} over {self.compared} input(s)")


def compare_outputs(
    converted: Sequence[Mapping[str, np.ndarray]],
    original: Sequence[Arrays],
    tolerance: float,
) -> Comparison:
    """Compare outputs input by input.

    Float outputs are compared by scaled error ``max|a - b| / (1 + max|b|)``
    (NaN counts as an infinite error unless both sides are NaN there); other
    dtypes and all shapes must match exactly.
    """
    worst, worst_name, mismatch = 0.0, None, False
    for got, want in zip(converted, original, strict=True):
        for name in sorted(want):
            a, b = np.asarray(got.get(name)), np.asarray(want[name])
            if a.shape != b.shape:
                return Comparison(len(original), worst, name, True, tolerance)
            if b.dtype.kind in "fc":
                error = scaled_error([a.astype(b.dtype)], [b])
                if worst_name is None or error > worst:
                    worst, worst_name = error, name
            elif not np.array_equal(a, b):
                mismatch, worst_name = True, name
                return Comparison(len(original), worst, worst_name, mismatch, tolerance)
    return Comparison(len(original), worst, worst_name, mismatch, tolerance)
