"""Scrape-time fleet metrics: how many replicas' shape counts builds merge, and this
replica's contributions the store refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class MergedShapes(Protocol):
    """The fleet's merged counts (:class:`sidecar.fleet.shape_source.FleetShapeSource`)."""

    @property
    def contributors(self) -> int:
        """Replicas whose fresh counts builds merge, this one included."""
        ...


class SharedShapes(Protocol):
    """This replica's contributions
    (:class:`sidecar.fleet.shape_contributor.ShapeContributor`)."""

    @property
    def failed_writes(self) -> int:
        """This replica's contributions the store refused so far."""
        ...


class FleetShapesCollector(Collector):
    """``tftrt_sidecar_fleet_shape_contributors`` and
    ``tftrt_sidecar_fleet_shape_write_failures_total``."""

    def __init__(self, merged: MergedShapes, shared: SharedShapes) -> None:
        self._merged = merged
        self._shared = shared

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Read both (the contributor count reads the store at most every few seconds)."""
        yield GaugeMetricFamily(
            "tftrt_sidecar_fleet_shape_contributors",
            "Replicas whose fresh shape counts this replica's builds merge (itself included).",
            value=self._merged.contributors)
        yield CounterMetricFamily(
            "tftrt_sidecar_fleet_shape_write_failures",
            "This replica's shape-count contributions the fleet store refused.",
            value=self._shared.failed_writes)
