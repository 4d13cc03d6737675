"""Prometheus metrics (``tftrt_sidecar_*``) on a registry passed in, served at ``/metrics``.

Public API: :class:`SidecarMetrics` with :class:`ScrapeSources` and :class:`BuildInfo`;
its observers :class:`JobMetrics` (a JobObserver) and :class:`TapMetrics` (a TapObserver);
:class:`MetricsServer`.
"""

from __future__ import annotations

from sidecar.metrics.build_info import BuildInfo
from sidecar.metrics.job_metrics import JobMetrics, conversion_result
from sidecar.metrics.server import MetricsServer
from sidecar.metrics.sidecar_metrics import ScrapeSources, SidecarMetrics
from sidecar.metrics.tap_metrics import TapMetrics

__all__ = [
    "BuildInfo",
    "JobMetrics",
    "MetricsServer",
    "ScrapeSources",
    "SidecarMetrics",
    "TapMetrics",
    "conversion_result",
]
