"""Traffic shares: which shape sets carry the traffic, and how much a prebuilt set covers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sidecar.shapes.shape_set import ShapeSet


@dataclass(frozen=True)
class ShapeSetCount:
    """How many requests in the window had `shape_set`, and their share of all requests."""

    shape_set: ShapeSet
    count: int
    share: float


@dataclass(frozen=True)
class TopShapeSets:
    """The shape sets carrying the most traffic of one (model, signature), most first."""

    entries: tuple[ShapeSetCount, ...]
    total_requests: int

    @property
    def covered_share(self) -> float:
        """Share of the window's traffic these shape sets carry (0.0 when there was none)."""
        return sum(entry.share for entry in self.entries)

    @property
    def shape_sets(self) -> list[ShapeSet]:
        """Just the shape sets, most traffic first."""
        return [entry.shape_set for entry in self.entries]


@dataclass(frozen=True)
class Coverage:
    """The part of the window's traffic whose shape set has a prebuilt engine."""

    covered_requests: int
    total_requests: int

    @property
    def share(self) -> float:
        """Covered share in [0, 1]; 1.0 when there was no traffic (nothing is uncovered)."""
        if self.total_requests == 0:
            return 1.0
        return self.covered_requests / self.total_requests


def rank_shape_sets(counts: Sequence[tuple[ShapeSet, int]], limit: int) -> TopShapeSets:
    """The `limit` shape sets with the most requests; ties broken by the canonical key."""
    total = sum(count for _, count in counts)
    ordered = sorted(counts, key=lambda item: (-item[1], item[0].key()))[: max(limit, 0)]
    entries = tuple(
        ShapeSetCount(shape_set, count, count / total if total else 0.0)
        for shape_set, count in ordered
    )
    return TopShapeSets(entries, total)


def coverage_of(counts: Sequence[tuple[ShapeSet, int]], prebuilt: Iterable[ShapeSet]) -> Coverage:
    """How much of `counts` at least one of `prebuilt` matches (see `ShapeSet.matches`)."""
    built = list(prebuilt)
    covered = sum(
        count for observed, count in counts if any(spec.matches(observed) for spec in built)
    )
    return Coverage(covered, sum(count for _, count in counts))
