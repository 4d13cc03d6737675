"""Comparing the converted model's outputs with the original's: the accuracy check.

Each float output is checked the way its values are read (the policy's ``accuracy``):
class scores by top-1 agreement (the share of rows whose most likely class is the
original's), anything else by scaled error within a tolerance. Other dtypes and every
shape must match exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from converter import scaled_error
from sidecar.jobs.session_model import Arrays
from sidecar.publish.published_accuracy import AccuracyRecord

SCALED_ERROR: Final = "scaled_error"
TOP1: Final = "top1"
AUTO: Final = "auto"
"""The accuracy checks (``ModelPolicy.accuracy``)."""

_PROBABILITY_SUM_TOLERANCE: Final = 1e-3
"""How far from 1 a row of class probabilities may sum (float32 softmax rounds)."""


@dataclass(frozen=True)
class AccuracyCheck:
    """How outputs are judged: which check, and the bounds."""

    kind: str = SCALED_ERROR
    """``auto``: top-1 agreement for outputs holding class probabilities, scaled error for
    the others; ``top1``: top-1 agreement for every float [batch, classes >= 2] output;
    ``scaled_error``: scaled error for every output."""

    max_scaled_error: float = 0.0
    """Largest scaled error accepted where scaled error is checked."""

    min_top1_agreement: float = 1.0
    """Smallest top-1 agreement accepted where top-1 agreement is checked."""

    def uses_top1(self, original: Sequence[np.ndarray]) -> bool:
        """Whether an output with these values (one array per compared input) is checked
        by top-1 agreement."""
        if self.kind == SCALED_ERROR or not all(_class_scores(b) for b in original):
            return False
        return self.kind == TOP1 or all(_probabilities(b) for b in original)


@dataclass(frozen=True)
class Comparison:
    """How far the converted outputs are from the original's over every compared input."""

    compared: int
    """Inputs compared."""

    worst_error: float
    """Largest scaled error over the outputs checked by scaled error (0.0 when none was)."""

    worst_output: str | None
    """The output with the largest error, or the first mismatching non-float output."""

    exact_mismatch: bool
    """A non-float output (integer, bool, string) or an output shape differed."""

    tolerance: float
    """The largest scaled error accepted."""

    top1_agreement: float | None = None
    """Lowest top-1 agreement over the outputs checked by it; None when none was."""

    top1_output: str | None = None
    """The output with that agreement."""

    top1_rows: int = 0
    """Rows (examples) that agreement was counted on."""

    min_top1_agreement: float = 1.0
    """The smallest top-1 agreement accepted."""

    @property
    def matches(self) -> bool:
        """True when every output passes its check."""
        return (not self.exact_mismatch and self.worst_error <= self.tolerance
                and (self.top1_agreement is None
                     or self.top1_agreement >= self.min_top1_agreement))

    def describe(self) -> str:
        """One line for logs and the journal."""
        if self.exact_mismatch:
            return (f"output {self.worst_output!r} differs exactly (shape or non-float values) "
                    f"on {self.compared} compared input(s)")
        parts = []
        if self.worst_output is not None:
            parts.append(f"largest scaled error {self.worst_error:.3g} (output "
                         f"{self.worst_output!r}) against a tolerance of {self.tolerance:g}")
        if self.top1_agreement is not None:
            parts.append(f"top-1 agreement {self.top1_agreement:.4g} (output "
                         f"{self.top1_output!r}, {self.top1_rows} rows) against a minimum of "
                         f"{self.min_top1_agreement:g}")
        return f"{'; '.join(parts) or 'no float outputs'} over {self.compared} input(s)"


def compare_outputs(
    converted: Sequence[Mapping[str, np.ndarray]],
    original: Sequence[Arrays],
    check: AccuracyCheck | float,
) -> Comparison:
    """Compare outputs input by input; ``check`` is an :class:`AccuracyCheck`, or a bare
    tolerance for scaled error on every output.

    Scaled error is ``max|a - b| / (1 + max|b|)`` per input (NaN counts as an infinite
    error unless both sides are NaN there); top-1 agreement counts rows over all inputs.
    Other dtypes and all shapes must match exactly.
    """
    if not isinstance(check, AccuracyCheck):
        check = AccuracyCheck(SCALED_ERROR, max_scaled_error=check)
    base = Comparison(len(original), 0.0, None, False, check.max_scaled_error,
                      min_top1_agreement=check.min_top1_agreement)
    floats: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for got, want in zip(converted, original, strict=True):
        for name in sorted(want):
            a, b = np.asarray(got.get(name)), np.asarray(want[name])
            if a.shape != b.shape:
                return dataclasses.replace(base, worst_output=name, exact_mismatch=True)
            if b.dtype.kind in "fc":
                pairs = floats.setdefault(name, ([], []))
                pairs[0].append(a.astype(b.dtype))
                pairs[1].append(b)
            elif not np.array_equal(a, b):
                return dataclasses.replace(base, worst_output=name, exact_mismatch=True)
    worst, worst_name = 0.0, None
    agreement: tuple[float, str, int] | None = None
    for name, (mine, theirs) in sorted(floats.items()):
        if check.uses_top1(theirs):
            rows = sum(len(b) for b in theirs)
            same = sum(int(np.sum(np.argmax(a, axis=1) == np.argmax(b, axis=1)))
                       for a, b in zip(mine, theirs, strict=True))
            if agreement is None or same / rows < agreement[0]:
                agreement = (same / rows, name, rows)
            continue
        error = max(scaled_error([a], [b]) for a, b in zip(mine, theirs, strict=True))
        if worst_name is None or error > worst:
            worst, worst_name = error, name
    found = dataclasses.replace(base, worst_error=worst, worst_output=worst_name)
    if agreement is None:
        return found
    return dataclasses.replace(found, top1_agreement=agreement[0], top1_output=agreement[1],
                               top1_rows=agreement[2])


def _class_scores(values: np.ndarray) -> bool:
    """A float [batch, classes >= 2] array with at least one row."""
    return values.dtype.kind == "f" and values.ndim == 2 and values.shape[1] >= 2 and (
        values.shape[0] >= 1)


def _probabilities(values: np.ndarray) -> bool:
    """Every row non-negative and summing to 1: a softmax's class probabilities."""
    finite = bool(np.all(np.isfinite(values)))
    return finite and bool(np.all(values >= 0)) and bool(
        np.all(np.abs(values.sum(axis=1) - 1.0) <= _PROBABILITY_SUM_TOLERANCE))


def accuracy_record(precision: str, precision_reason: str, compared_on: str,
                    comparison: Comparison) -> AccuracyRecord:
    """The record a converted version is published with: what it computes in, and the
    accuracy ``comparison`` measured on ``compared_on``."""
    return AccuracyRecord(
        precision=precision, precision_reason=precision_reason, compared_on=compared_on,
        compared=comparison.compared, scaled_error=comparison.worst_error,
        max_scaled_error=comparison.tolerance, top1_agreement=comparison.top1_agreement,
        top1_rows=comparison.top1_rows, min_top1_agreement=comparison.min_top1_agreement)
