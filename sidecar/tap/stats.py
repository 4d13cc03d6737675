"""What the tap counts, and the observer seam metrics plug into."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

import grpc

from sidecar.shapes import Refusal, ShapeObservation


class TapObserver(Protocol):
    """Told about everything the tap does; metrics exporters implement this.

    `forwarded` and `dropped` run on the tap's event loop, on the request path: keep them
    to a few counter increments. The other callbacks run on one recording worker thread,
    one call at a time.
    """

    def forwarded(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """A call of `method` finished with `code` after `seconds` (tap to upstream and back):
        TF Serving's answer, or the channel's when TF Serving could not be reached."""

    def abandoned(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """The client gave up on a call of `method` after `seconds`, before TF Serving
        answered: it cancelled (`CANCELLED`) or its own deadline passed
        (`DEADLINE_EXCEEDED`). Not an upstream error."""

    def refused(self, method: str) -> None:
        """A call was refused at the tap (not on the allow-list); `method` is its short name
        for TF Serving's own methods, `other` for any other path."""

    def dropped(self, method: str) -> None:
        """A call was not recorded because the recording queue was full."""

    def recorded(self, observation: ShapeObservation, refusal: Refusal | None) -> None:
        """An observation reached the recorder; `refusal` says why it was not stored."""

    def unparsable(self, method: str) -> None:
        """A request of `method` could not be parsed for recording (it was forwarded)."""

    def recorder_failed(self, error: Exception) -> None:
        """The recorder raised; the batch it was given is lost, the tap goes on."""


class TapStats:
    """Plain counters of a running tap; a `TapObserver` that is always attached."""

    def __init__(self) -> None:
        self.calls_by_method: Counter[str] = Counter()
        """Finished calls per method name (`"Predict"`, ...)."""
        self.calls_by_code: Counter[str] = Counter()
        """Finished calls per status code name (`"OK"`, `"NOT_FOUND"`, ...), abandoned ones
        included, as `tftrt_sidecar_tap_calls_total` counts them."""
        self.abandoned_by_code: Counter[str] = Counter()
        """Calls the client cancelled (`"CANCELLED"`) or let expire (`"DEADLINE_EXCEEDED"`)."""
        self.refused_by_method: Counter[str] = Counter()
        """Calls refused at the tap, per method label (see `TapObserver.refused`)."""
        self.dropped_records = 0
        """Calls not recorded because the queue was full."""
        self.requests_by_model: Counter[str] = Counter()
        """Recorded observations per model."""
        self.samples = 0
        """Observations that carried a sampled request."""
        self.refused_by_reason: Counter[str] = Counter()
        """Observations the recorder refused, per `Refusal` value."""
        self.unparsable_requests = 0
        """Forwarded requests that could not be parsed for recording."""
        self.recorder_failures = 0
        """Batches lost because the recorder raised."""

    @property
    def upstream_errors(self) -> int:
        """Calls that ended with any status other than OK, less those the client abandoned
        (refused calls are not in `calls_by_code` at all)."""
        failed = sum(count for code, count in self.calls_by_code.items() if code != "OK")
        return failed - sum(self.abandoned_by_code.values())

    def forwarded(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """Count a finished call."""
        self.calls_by_method[method] += 1
        self.calls_by_code[code.name] += 1

    def abandoned(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """Count a call the client gave up on, among all calls and apart."""
        self.calls_by_method[method] += 1
        self.calls_by_code[code.name] += 1
        self.abandoned_by_code[code.name] += 1

    def refused(self, method: str) -> None:
        """Count a refused call."""
        self.refused_by_method[method] += 1

    def dropped(self, method: str) -> None:
        """Count a dropped record."""
        self.dropped_records += 1

    def recorded(self, observation: ShapeObservation, refusal: Refusal | None) -> None:
        """Count an observation handed to the recorder."""
        self.requests_by_model[observation.model] += 1
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


class ObserverFanout:
    """Forwards every callback to several observers, in order."""

    def __init__(self, observers: list[TapObserver]) -> None:
        self._observers = tuple(observers)

    def forwarded(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """Fan out `forwarded`."""
        for observer in self._observers:
            observer.forwarded(method, code, seconds)

    def abandoned(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """Fan out `abandoned`."""
        for observer in self._observers:
            observer.abandoned(method, code, seconds)

    def refused(self, method: str) -> None:
        """Fan out `refused`."""
        for observer in self._observers:
            observer.refused(method)

    def dropped(self, method: str) -> None:
        """Fan out `dropped`."""
        for observer in self._observers:
            observer.dropped(method)

    def recorded(self, observation: ShapeObservation, refusal: Refusal | None) -> None:
        """Fan out `recorded`."""
        for observer in self._observers:
            observer.recorded(observation, refusal)

    def unparsable(self, method: str) -> None:
        """Fan out `unparsable`."""
        for observer in self._observers:
            observer.unparsable(method)

    def recorder_failed(self, error: Exception) -> None:
        """Fan out `recorder_failed`."""
        for observer in self._observers:
            observer.recorder_failed(error)
