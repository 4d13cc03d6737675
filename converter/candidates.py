"""Choose what to publish by measuring it: the original, frozen native, frozen with
XLA segments, frozen in bfloat16 or in int8, each written, timed in the TF1 Session path
(TF Serving's) on the shape sets the build saw and checked with its precision's
tolerance. The converted model is never slower than the original."""

from __future__ import annotations

import collections
import dataclasses
import pathlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from converter.params import TOLERANCE, TrtPrecisionMode
from converter.serving.timing import SessionTiming, time_in_sessions

ORIGINAL = "original"
FROZEN = "frozen"
FROZEN_XLA = "frozen+xla"
XLA = "xla"
FROZEN_BF16 = "frozen+bf16"
FROZEN_INT8 = "frozen+int8"
"""Candidate names: XLA is FROZEN_XLA when no weight could be frozen."""

MIN_GAIN = 0.03
"""A candidate replaces the original only if it is at least this much faster on
every measured shape set: smaller gains are within the timing noise of a busy
machine, and the converted model must never be slower than the original."""

MAX_MEASURED_SHAPE_SETS = 4
"""Candidates are timed on the build's most frequent shape sets, at most this many
(each costs a few seconds of timing per candidate)."""

Feed = Mapping[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class CandidateReport:
    """One candidate's measurement and verdict."""

    name: str
    description: str
    latency_ms: list[float]
    """Median Session call time per measured shape set (same order as `Choice.shapes`)."""
    errors: list[float]
    """Scaled error against the original per measured shape set (`scaled_error`)."""
    failure: str | None
    eligible: bool
    note: str
    precision: str = TrtPrecisionMode.FP32
    """What it computes in; its errors are held to `TOLERANCE[precision]`. (Reports
    written before candidates had precisions read as FP32, which they all were.)"""

    @property
    def worst_error(self) -> float | None:
        """Its largest scaled error, or None when it did not run."""
        return max(self.errors) if self.errors else None


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
    return True, f"within tolerance ({worst:.3g} <= {tolerance:g})"


def choose(
    names: Sequence[str],
    descriptions: Sequence[str],
    precisions: Sequence[str],
    timings: Sequence[SessionTiming],
    shapes: list[list[list[int]]],
    uses: list[int],
    forced: str | None = None,
) -> Choice:
    """Pick among candidates (`names[0]` is the original): the fastest in total
    (weighted by uses) of those that match the original within their precision's
    tolerance (`TOLERANCE`) and beat it by `MIN_GAIN` on every shape set; else the
    original. `forced` (keep_slower_engines) wins whenever it runs and matches,
    whatever its speed."""
    original = timings[0]
    reports = []
    for index, (name, description, precision, timing) in enumerate(
            zip(names, descriptions, precisions, timings, strict=True)):
        eligible, note = _verdict(timing, TOLERANCE[precision],
                                  None if index == 0 else original)
        if index > 0 and name == forced and timing.failure is None and "differ" not in note:
            eligible, note = True, "kept whatever its speed (keep_slower_engines)"
        reports.append(CandidateReport(
            name=name, description=description,
            latency_ms=[s * 1e3 for s in timing.seconds], errors=list(timing.errors),
            failure=timing.failure, eligible=eligible, note=note, precision=precision))
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


@dataclasses.dataclass(frozen=True)
class CandidateSpec:
    """A candidate to measure: how to write it, and what it is."""

    name: str
    description: str
    write: Callable[[pathlib.Path], object]
    """Creates the SavedModel at the given (not yet existing) directory."""
    precision: str = TrtPrecisionMode.FP32
    """What it computes in: its outputs are checked with that precision's tolerance."""


@dataclasses.dataclass(frozen=True)
class Selection:
    """The measured choice and where each candidate was written."""

    choice: Choice
    directories: dict[str, pathlib.Path]
    cases: list[Feed]
    """The input measured for each shape set (in `choice.shapes` order)."""


def measured_cases(feeds: Sequence[Feed]) -> tuple[list[Feed], list[list[list[int]]], list[int]]:
    """The first feed of each of the most frequent shape sets, their shapes, their counts."""
    counts: collections.Counter[tuple[tuple[int, ...], ...]] = collections.Counter()
    first: dict[tuple[tuple[int, ...], ...], Feed] = {}
    for feed in feeds:
        shapes = tuple(tuple(np.shape(feed[name])) for name in sorted(feed))
        counts[shapes] += 1
        first.setdefault(shapes, feed)
    chosen = counts.most_common(MAX_MEASURED_SHAPE_SETS)
    return ([first[s] for s, _ in chosen], [[list(d) for d in s] for s, _ in chosen],
            [n for _, n in chosen])


def select(
    *,
    original: pathlib.Path,
    candidates: Sequence[CandidateSpec],
    workdir: pathlib.Path,
    tags: Sequence[str],
    signature_key: str,
    feeds: Sequence[Feed],
    expected_for: Callable[[Feed], Mapping[str, np.ndarray]] | None,
    forced: str | None,
) -> Selection:
    """Write `candidates` under `workdir` and choose among them and the original.

    Outputs are checked against the original as a Session runs it; `expected_for`
    gives them where the original cannot run in a Session (None: it must)."""
    directories = {ORIGINAL: original}
    for candidate in candidates:
        directories[candidate.name] = workdir / candidate.name.replace("+", "-")
        candidate.write(directories[candidate.name])
    cases, shapes, uses = measured_cases(feeds)
    expected = [expected_for(feed) for feed in cases] if expected_for else None
    timings = time_in_sessions(list(directories.values()), tags, signature_key, cases,
                               expected)
    choice = choose([ORIGINAL, *(c.name for c in candidates)],
                    ["the input SavedModel, unchanged", *(c.description for c in candidates)],
                    [TrtPrecisionMode.FP32, *(c.precision for c in candidates)],
                    timings, shapes, uses, forced)
    return Selection(choice=choice, directories=directories, cases=cases)
