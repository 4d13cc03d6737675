"""The service loop on its pipeline alone, in-process: no shape store, tap, metrics, admin
API or fleet beside it unless a test passes one (:class:`~sidecar.service.wiring.Features`),
with the seams a test replaces (:class:`~sidecar.service.wiring.Seams`)."""

from __future__ import annotations

from sidecar.config import Settings
from sidecar.service.loop import SidecarService
from sidecar.service.wiring import Features, Seams, build_parts


def pipeline_service(settings: Settings, seams: Seams | None = None,
                     features: Features | None = None) -> SidecarService:
    """The service on ``settings`` with ``seams`` (None: the defaults), and of its features
    only ``features`` (None: none)."""
    return SidecarService(settings, build_parts(settings, seams or Seams(), features))
