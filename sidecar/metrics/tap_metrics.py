"""Tap metrics: a :class:`~sidecar.tap.stats.TapObserver` that counts calls, latency and records."""

from __future__ import annotations

from typing import Final

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from sidecar.admin.published import PublishedModels
from sidecar.shapes import Refusal, ShapeObservation

LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
"""Inference calls take from well under a millisecond to seconds."""

UPSTREAM_ERROR_CODES: Final = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
)
"""Codes meaning TF Serving did not answer in time or could not be reached; other codes
are TF Serving's own answers and only show in ``tftrt_sidecar_tap_calls_total``. A
DEADLINE_EXCEEDED is an upstream error only while the client's own deadline had not passed
(TF Serving's own timeout); calls the client cancelled or let expire are counted in
``tftrt_sidecar_tap_client_abandoned_total`` instead."""


class TapMetrics:
    """Counts the tap's calls by method and code, their latency, recorded requests by model and
    whether their shape is prebuilt, upstream errors, calls clients abandoned, refused calls
    and dropped shape records."""

    def __init__(self, registry: CollectorRegistry, published: PublishedModels | None) -> None:
        self._published = published
        self._calls = Counter(
            "tftrt_sidecar_tap_calls", "Calls the tap forwarded, by method and status code.",
            ["method", "code"], registry=registry,
        )
        self._latency = Histogram(
            "tftrt_sidecar_tap_latency_seconds",
            "Time from the tap receiving a call to its answer (through TF Serving).",
            ["method"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self._upstream_errors = Counter(
            "tftrt_sidecar_tap_upstream_errors",
            "Tap calls to TF Serving that failed before TF Serving answered "
            "(unreachable or deadline exceeded).",
            ["code"], registry=registry,
        )
        self._abandoned = Counter(
            "tftrt_sidecar_tap_client_abandoned",
            "Tap calls the client gave up on before TF Serving answered: it cancelled "
            "(CANCELLED) or its own deadline passed (DEADLINE_EXCEEDED). Not upstream errors.",
            ["method", "code"], registry=registry,
        )
        self._refused = Counter(
            "tftrt_sidecar_tap_refused_calls",
            "Calls refused at the tap with PERMISSION_DENIED because clients may not make them "
            "(method: TF Serving's method name, or other).",
            ["method"], registry=registry,
        )
        self._requests = Counter(
            "tftrt_sidecar_tap_requests",
            "Successful inference requests by model and by whether the served version has an "
            "engine prebuilt for their shapes.",
            ["model", "prebuilt"], registry=registry,
        )
        self._dropped = Counter(
            "tftrt_sidecar_shape_records_dropped",
            "Request shapes not recorded, by reason (queue_full, unparsable, or the shape "
            "store's refusal).",
            ["reason"], registry=registry,
        )
        self._recorder_failures = Counter(
            "tftrt_sidecar_shape_recorder_failures",
            "Batches of shape records lost because the shape store raised.",
            registry=registry,
        )

    def forwarded(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """Count the call and observe its latency."""
        self._calls.labels(method, code.name).inc()
        self._latency.labels(method).observe(seconds)
        if code in UPSTREAM_ERROR_CODES:
            self._upstream_errors.labels(code.name).inc()

    def abandoned(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """Count the call among all calls (with its latency) and as abandoned by the client."""
        self._calls.labels(method, code.name).inc()
        self._latency.labels(method).observe(seconds)
        self._abandoned.labels(method, code.name).inc()

    def refused(self, method: str) -> None:
        """Count a call refused at the tap."""
        self._refused.labels(method).inc()

    def dropped(self, method: str) -> None:
        """Count a record dropped because the recording queue was full."""
        self._dropped.labels("queue_full").inc()

    def recorded(self, observation: ShapeObservation, refusal: Refusal | None) -> None:
        """Count the request by model and prebuilt-or-not; a refusal as a dropped record."""
        prebuilt = False
        if self._published is not None:
            built = self._published.prebuilt_for(observation.model, observation.signature)
            prebuilt = any(spec.matches(observation.shape_set) for spec in built)
        self._requests.labels(observation.model, "true" if prebuilt else "false").inc()
        if refusal is not None:
            self._dropped.labels(refusal.value).inc()

    def unparsable(self, method: str) -> None:
        """Count a request whose shapes could not be read."""
        self._dropped.labels("unparsable").inc()

    def recorder_failed(self, error: Exception) -> None:
        """Count a lost batch."""
        self._recorder_failures.inc()
