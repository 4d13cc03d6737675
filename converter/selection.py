"""Write each candidate SavedModel, time them all in one Session process, choose."""

from __future__ import annotations

import collections
import dataclasses
import pathlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from converter.candidates import ORIGINAL, Choice, choose
from converter.params import TrtPrecisionMode
from converter.session_timing import time_in_sessions

MAX_MEASURED_SHAPE_SETS = 4
"""Candidates are timed on the build's most frequent shape sets, at most this many
(each costs a few seconds of timing per candidate)."""

Feed = Mapping[str, np.ndarray]


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
