"""What the admin API and the metrics read of recorded traffic: one pod's shape store
(:class:`~sidecar.shapes.store.ShapeStore`), or in a fleet the fleet's merged counts
(:class:`sidecar.fleet.shape_source.FleetShapeSource`), the counts builds use."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sidecar.shapes.coverage import Coverage, TopShapeSets
from sidecar.shapes.limits import Refusal
from sidecar.shapes.shape_set import ShapeSet


class RecordedShapes(Protocol):
    """Recorded request shapes by (model, signature), over the recent window."""

    def signatures(self) -> list[tuple[str, str]]:
        """Every (model, signature) with recent traffic, sorted."""
        ...

    def top_shape_sets(self, model: str, signature: str, limit: int) -> TopShapeSets:
        """The at most ``limit`` shape sets that carried the most recent traffic."""
        ...

    def coverage(self, model: str, signature: str, prebuilt: Iterable[ShapeSet]) -> Coverage:
        """The share of recent (model, signature) traffic ``prebuilt`` shape sets match."""
        ...

    def refused_counts(self, model: str | None = None) -> dict[Refusal, int]:
        """Observations refused (too many shape sets, too large), by reason."""
        ...
