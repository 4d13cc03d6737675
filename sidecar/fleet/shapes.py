"""Fleet-wide shapes: each replica's recorded shape counts, one file per replica, merged.

A replica writes its counts periodically (:func:`encode_contribution`, stored with
:meth:`FleetStore.contribute_shapes`, which replaces the replica's one file atomically);
whoever builds reads every file and merges those written within ``horizon_seconds``
(:func:`merge_contributions`), so the counts of a replica that went away age out once it
stops writing. Shape sets are spelled as :meth:`sidecar.shapes.ShapeSet.key` spells them.

Freshness is judged by the writer's wall-clock stamp against the reader's: replica clocks
are assumed to agree (NTP) within a small part of the horizon, which is minutes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from sidecar.shapes import Coverage, ShapeSet, TopShapeSets, coverage_of, rank_shape_sets

FORMAT: Final = 1
"""The contribution file's format number."""

FRESH_INTERVALS: Final = 4
"""A contribution is fresh for this many sharing intervals (``shape_share_seconds``): a
replica whose writes failed a few times in a row still counts, one gone for longer not."""


def horizon_for(share_seconds: float) -> float:
    """How old (seconds) a contribution may be and still count, with replicas writing every
    ``share_seconds``."""
    return FRESH_INTERVALS * share_seconds

SignatureCounts = Mapping[tuple[str, str], Sequence[tuple[ShapeSet, int]]]
"""(model, signature) -> each shape set with its request count, as a shape store counts."""


class CountSource(Protocol):
    """What a replica's counts are read from; :class:`sidecar.shapes.ShapeStore` is one."""

    def signatures(self) -> list[tuple[str, str]]:
        """Every (model, signature) with traffic in the window."""
        ...

    def shape_set_counts(self, model: str, signature: str) -> list[tuple[ShapeSet, int]]:
        """Every shape set of (model, signature) in the window with its request count."""
        ...


def recorded_counts(source: CountSource) -> dict[tuple[str, str], list[tuple[ShapeSet, int]]]:
    """Everything ``source`` counted in its window, ready for :func:`encode_contribution`."""
    return {(model, signature): source.shape_set_counts(model, signature)
            for model, signature in source.signatures()}


def encode_contribution(replica: str, written_at: float, counts: SignatureCounts) -> bytes:
    """One replica's counts as its contribution file (``written_at``: wall-clock seconds)."""
    rows = [[model, signature, shape_set.key(), count]
            for (model, signature), entries in sorted(counts.items())
            for shape_set, count in sorted(entries, key=lambda entry: entry[0].key())]
    return json.dumps({"format": FORMAT, "replica": replica, "written_at": written_at,
                       "counts": rows}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class FleetShapes:
    """The merged counts of the fleet's fresh contributions; answers as a shape source does."""

    counts: Mapping[tuple[str, str], Mapping[ShapeSet, int]]
    """(model, signature) -> shape set -> requests, summed over contributors."""

    contributors: tuple[str, ...]
    """The replicas whose files were fresh and readable, sorted."""

    ignored: tuple[str, ...]
    """The replicas whose files were stale or not contribution files, sorted."""

    def shape_set_counts(self, model: str, signature: str) -> list[tuple[ShapeSet, int]]:
        """Every shape set of (model, signature) the fleet saw, with its request count."""
        return sorted(self.counts.get((model, signature), {}).items(),
                      key=lambda entry: entry[0].key())

    def top_shape_sets(self, model: str, signature: str, limit: int) -> TopShapeSets:
        """The at most ``limit`` shape sets that carried the most fleet traffic."""
        return rank_shape_sets(self.shape_set_counts(model, signature), limit)

    def coverage(self, model: str, signature: str, prebuilt: Iterable[ShapeSet]) -> Coverage:
        """The share of the fleet's (model, signature) traffic ``prebuilt`` shape sets match."""
        return coverage_of(self.shape_set_counts(model, signature), prebuilt)

    def signatures(self) -> list[tuple[str, str]]:
        """Every (model, signature) with fleet traffic, sorted."""
        return sorted(self.counts)


def merge_contributions(
    files: Mapping[str, bytes], *, now: float, horizon_seconds: float
) -> FleetShapes:
    """Sum the contributions written within ``horizon_seconds`` before ``now`` (wall clock)."""
    merged: dict[tuple[str, str], dict[ShapeSet, int]] = {}
    contributors: list[str] = []
    ignored: list[str] = []
    for replica, data in sorted(files.items()):
        rows = _fresh_rows(data, now, horizon_seconds)
        if rows is None:
            ignored.append(replica)
            continue
        contributors.append(replica)
        for model, signature, shape_set, count in rows:
            per_shape = merged.setdefault((model, signature), {})
            per_shape[shape_set] = per_shape.get(shape_set, 0) + count
    return FleetShapes(merged, tuple(contributors), tuple(ignored))


def _fresh_rows(data: bytes, now: float, horizon: float
                ) -> list[tuple[str, str, ShapeSet, int]] | None:
    """The rows of a fresh, well-formed contribution; None for a stale or foreign file
    (a file another release or a crash left is ignored, never trusted)."""
    try:
        value: Any = json.loads(data)
        if value.get("format") != FORMAT or not now - horizon <= float(value["written_at"]):
            return None
        return [(str(m), str(s), ShapeSet.from_key(str(k)), int(c))
                for m, s, k, c in value["counts"]]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
