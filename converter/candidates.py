"""Choose what to publish by measuring it: the original, frozen native, or frozen
with XLA segments, each timed in the TF1 Session path (TF Serving's) on the shape
sets the build saw. The converted model is never slower than the original."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from converter.session_timing import SessionTiming

ORIGINAL = "original"
FROZEN = "frozen"
FROZEN_XLA = "frozen+xla"
XLA = "xla"
"""Candidate names: XLA is FROZEN_XLA when no weight could be frozen."""

MIN_GAIN = 0.03
"""A candidate replaces the original only if it is at least this much faster on
every measured shape set: smaller gains are within the timing noise of a busy
machine, and the converted model must never be slower than the original."""


@dataclasses.dataclass(frozen=True)
class CandidateReport:
    """One candidate's measurement and verdict."""

    name: str
    description: str
    latency_ms: list[float]
    """Median Session call time per measured shape set (same order as `Choice.shapes`)."""
    errors: list[float]
    failure: str | None
    eligible: bool
    note: str


@dataclasses.dataclass(frozen=True)
class Choice:
    """Which candidate won, why, and every candidate's timing."""

    chosen: str
    reason: str
    shapes: list[list[list[int]]]
    """Each measured shape set (the signature inputs' shapes, sorted by input name)."""
    uses: list[int]
    """How many build inputs had each shape set."""
    candidates: list[CandidateReport]


def _total(seconds: Sequence[float], uses: Sequence[int]) -> float:
    return sum(s * u for s, u in zip(seconds, uses, strict=True))


def _verdict(timing: SessionTiming, tolerance: float,
             reference: SessionTiming | None) -> tuple[bool, str]:
    if timing.failure is not None:
        return False, f"fails in a TF1 Session: {timing.failure}"
    worst = max(timing.errors, default=0.0)
    if not worst <= tolerance:
        return False, f"outputs differ: scaled error {worst:.3g} exceeds {tolerance:g}"
    if reference is not None and reference.failure is None:
        slower = [i for i, (mine, theirs) in enumerate(
            zip(timing.seconds, reference.seconds, strict=True))
            if mine > (1 - MIN_GAIN) * theirs]
        if slower:
            return False, (f"not {MIN_GAIN:.0%} faster than the original on shape set(s) "
                           + ", ".join(str(i + 1) for i in slower))
    return True, f"within tolerance (scaled error {worst:.3g})"


def choose(
    names: Sequence[str],
    descriptions: Sequence[str],
    timings: Sequence[SessionTiming],
    shapes: list[list[list[int]]],
    uses: list[int],
    tolerance: float,
    forced: str | None = None,
) -> Choice:
    """Pick among candidates (`names[0]` is the original): the fastest in total
    (weighted by uses) of those that match the original within `tolerance` and beat
    it by `MIN_GAIN` on every shape set; else the original. `forced`
    (keep_slower_engines) wins whenever it runs and matches, whatever its speed."""
    original = timings[0]
    reports = []
    for index, (name, description, timing) in enumerate(
            zip(names, descriptions, timings, strict=True)):
        eligible, note = _verdict(timing, tolerance, None if index == 0 else original)
        if index > 0 and name == forced and timing.failure is None and "differ" not in note:
            eligible, note = True, "kept whatever its speed (keep_slower_engines)"
        reports.append(CandidateReport(
            name=name, description=description,
            latency_ms=[s * 1e3 for s in timing.seconds], errors=list(timing.errors),
            failure=timing.failure, eligible=eligible, note=note))
    rivals = [(r, t) for r, t in zip(reports[1:], timings[1:], strict=True) if r.eligible]
    if forced is not None and any(r.name == forced for r, _ in rivals):
        return Choice(forced, "keep_slower_engines keeps the engines whatever their speed",
                      shapes, uses, reports)
    if original.failure is not None:
        if not rivals:
            return Choice(ORIGINAL, "no candidate runs in a TF1 Session; the original "
                          f"does not either ({original.failure})", shapes, uses, reports)
        best, timing = min(rivals, key=lambda rt: _total(rt[1].seconds, uses))
        return Choice(best.name, "the original does not run in a TF1 Session "
                      f"({original.failure}); {best.name} is the fastest that does",
                      shapes, uses, reports)
    if rivals:
        best, timing = min(rivals, key=lambda rt: _total(rt[1].seconds, uses))
        gain = _total(original.seconds, uses) / _total(timing.seconds, uses)
        return Choice(best.name, f"fastest in the Session path: {gain:.2f}x the original's "
                      "speed over the build's shape sets", shapes, uses, reports)
    return Choice(ORIGINAL, f"no candidate matched the original and was {MIN_GAIN:.0%} "
                  "faster on every shape set: the original is saved unchanged",
                  shapes, uses, reports)
