"""What the recorder counts, and the observer seam metrics plug into.

Calls themselves (forwarded, refused, failed, abandoned by the client, and their latency)
are counted by Envoy, which forwards them; the recorder sees only the copies Envoy
mirrors to it.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from sidecar.shapes import Refusal, ShapeObservation


class TapObserver(Protocol):
    """Told about everything the recorder does; metrics exporters implement this.

    `dropped` runs on the recorder's event loop, as calls arrive: keep it to a counter
    increment. The other callbacks run on one recording worker thread, one call at a time.
    """

    def dropped(self, method: str) -> None:
        """A call was not recorded because the recording queue was full."""

    def recorded(self, observation: ShapeObservation, refusal: Refusal | None) -> None:
        """An observation reached the shape store; `refusal` says why it was not stored."""

    def unparsable(self, method: str) -> None:
        """A mirrored request of `method` could not be parsed for recording."""

    def recorder_failed(self, error: Exception) -> None:
        """The shape store raised; the batch it was given is lost, the recorder goes on."""

    def recording_stopped(self, task: str, error: Exception, restart_in: float) -> None:
        """Recording task ``task`` (``shape-recording``: gRPC, ``rest-shape-recording``:
        REST) raised ``error`` and stopped; it is started again in ``restart_in`` seconds."""

    def recording_restarted(self, task: str) -> None:
        """Recording task ``task``, stopped before, runs again."""


class TapStats:
    """Plain counters of a running recorder; a `TapObserver` that is always attached."""

    def __init__(self) -> None:
        self.dropped_records = 0
        """Calls not recorded because the queue was full."""
        self.requests_by_model: Counter[str] = Counter()
        """Calls recorded per model, each weighted by the calls it stands for."""
        self.samples = 0
        """Observations that carried a sampled request."""
        self.refused_by_reason: Counter[str] = Counter()
        """Observations the shape store refused, per `Refusal` value."""
        self.unparsable_requests = 0
        """Mirrored requests that could not be parsed for recording."""
        self.recorder_failures = 0
        """Batches lost because the shape store raised."""
        self.recording_restarts = 0
        """Times a recording task that had died was started again."""
        self.stopped_recordings: set[str] = set()
        """Recording tasks that died and wait to be started again."""

    def dropped(self, method: str) -> None:
        """Count a dropped record."""
        self.dropped_records += 1

    def recorded(self, observation: ShapeObservation, refusal: Refusal | None) -> None:
        """Count an observation handed to the shape store."""
        self.requests_by_model[observation.model] += observation.weight
        if observation.sample is not None and refusal is None:
            self.samples += 1
        if refusal is not None:
            self.refused_by_reason[refusal.value] += 1

    def unparsable(self, method: str) -> None:
        """Count an unparsable request."""
        self.unparsable_requests += 1

    def recorder_failed(self, error: Exception) -> None:
        """Count a failed recorder batch."""
        self.recorder_failures += 1

    def recording_stopped(self, task: str, error: Exception, restart_in: float) -> None:
        """Note the task as stopped."""
        self.stopped_recordings.add(task)

    def recording_restarted(self, task: str) -> None:
        """Count the restart; the task runs again."""
        self.stopped_recordings.discard(task)
        self.recording_restarts += 1
