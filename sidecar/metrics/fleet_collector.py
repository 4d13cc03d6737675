"""Scrape-time fleet metrics: how many replicas' shape counts builds merge, this replica's
contributions the store refused, and the damage it found in the store (artifacts it
refused, outcome files it could not read)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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


class StoreFindings(Protocol):
    """What this replica found wrong in the fleet store (:class:`sidecar.fleet.FleetStore`)."""

    @property
    def refused_artifacts(self) -> Mapping[str, int]:
        """Completed artifacts it refused as damaged, by model."""
        ...

    @property
    def corrupt_outcomes(self) -> int:
        """Outcome files it found unreadable, each counted once."""
        ...


class FleetStoreCollector(Collector):
    """``tftrt_sidecar_fleet_artifacts_refused_total{model}`` and
    ``tftrt_sidecar_fleet_corrupt_outcomes_total``."""

    def __init__(self, findings: StoreFindings) -> None:
        self._findings = findings

    def collect(self) -> Iterator[CounterMetricFamily]:
        """Read both (kept in memory: no store access at scrape time)."""
        refused = CounterMetricFamily(
            "tftrt_sidecar_fleet_artifacts_refused",
            "Completed artifacts of the fleet store this replica refused to install as "
            "damaged (record unreadable, a file differing from its manifest, or a model that "
            "does not load); the fleet builds each such key again.", labels=["model"])
        for model, count in sorted(self._findings.refused_artifacts.items()):
            refused.add_metric([model], count)
        yield refused
        yield CounterMetricFamily(
            "tftrt_sidecar_fleet_corrupt_outcomes",
            "Outcome files in the fleet store this replica could not read (each counted "
            "once); their generations count as ended without a completion.",
            value=self._findings.corrupt_outcomes)
