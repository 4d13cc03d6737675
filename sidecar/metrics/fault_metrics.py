"""``tftrt_sidecar_storage_fault{area}`` and ``tftrt_sidecar_storage_faults_total{area}``: the
storage faults the service is riding out, read from its fault board at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sidecar.base.faults import FaultArea, FaultBoard


class StorageFaultCollector(Collector):
    """1 per area (incoming, state, serving) while it has a fault, else 0; and how many
    faults each area has had since the start (a fault between two scrapes still shows)."""

    def __init__(self, board: FaultBoard) -> None:
        self._board = board

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Read the board."""
        current = self._board.current()
        in_fault = GaugeMetricFamily(
            "tftrt_sidecar_storage_fault",
            "1 while the area's storage is faulty (incoming missing or emptied, state disk "
            "refusing writes, ...); serving goes on meanwhile.", labels=["area"])
        started = CounterMetricFamily(
            "tftrt_sidecar_storage_faults", "Storage faults that started, per area.",
            labels=["area"])
        for area in FaultArea:
            in_fault.add_metric([area.value], 1.0 if area in current else 0.0)
            started.add_metric([area.value], self._board.started(area))
        yield in_fault
        yield started
