"""Recording metrics: a :class:`~sidecar.recorder.stats.TapObserver` that counts recorded requests.

Calls themselves (by status, latency, upstream errors, calls clients abandoned, refused
calls) are Envoy's own stats, scraped from its stats listener (``envoy_cluster_*`` and
``envoy_http_*``; see docs/operations.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from sidecar.publish.published import PublishedModels
from sidecar.shapes import Refusal, ShapeObservation


class TapMetrics:
    """Counts recorded requests by model and whether their shape is prebuilt, dropped
    shape records by reason, and lost batches and recording tasks."""

    def __init__(self, registry: CollectorRegistry, published: PublishedModels | None) -> None:
        self._published = published
        self._requests = Counter(
            "tftrt_sidecar_tap_requests",
            "Inference requests by model and by whether the served version has an engine "
            "prebuilt for their shapes, estimated from the share Envoy mirrors to the "
            "recorder (each recorded call counts as 1 / share).",
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
        self._recording_failures = Counter(
            "tftrt_sidecar_shape_recording_failures",
            "Times a recording task died (the batch it was recording is lost), by task: "
            "shape-recording (gRPC) or rest-shape-recording (REST); each is started again.",
            ["task"], registry=registry,
        )

    def dropped(self, method: str) -> None:
        """Count a record dropped because the recording queue was full."""
        self._dropped.labels("queue_full").inc()

    def recorded(self, observation: ShapeObservation, refusal: Refusal | None) -> None:
        """Count the request by model and prebuilt-or-not; a refusal as a dropped record."""
        prebuilt = False
        if self._published is not None:
            built = self._published.prebuilt_for(observation.model, observation.signature)
            prebuilt = any(spec.matches(observation.shape_set) for spec in built)
        self._requests.labels(observation.model, "true" if prebuilt else "false").inc(
            observation.weight)
        if refusal is not None:
            self._dropped.labels(refusal.value).inc()

    def unparsable(self, method: str) -> None:
        """Count a request whose shapes could not be read."""
        self._dropped.labels("unparsable").inc()

    def recorder_failed(self, error: Exception) -> None:
        """Count a lost batch."""
        self._recorder_failures.inc()

    def recording_stopped(self, task: str, error: Exception, restart_in: float) -> None:
        """Count a recording task that died."""
        self._recording_failures.labels(task).inc()

    def recording_restarted(self, task: str) -> None:
        """Nothing to count: the death was."""
