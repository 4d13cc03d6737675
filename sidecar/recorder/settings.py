"""Settings of the recorder: where mirrored calls arrive, what may queue and be sampled."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sidecar.config.address import Address
from sidecar.config.shape_store import ShapeStoreSettings
from sidecar.recorder.errors import TapSettingsError

# TF Serving itself accepts messages up to INT32_MAX bytes.
TF_SERVING_MAX_MESSAGE_BYTES = (1 << 31) - 1


@dataclass(frozen=True)
class RecorderSettings:
    """Where calls to record arrive and how they are recorded; validated on construction,
    trusted afterwards."""

    listen: Address
    """Where to serve (port 0 picks a free port; see the server's `port`)."""
    max_message_bytes: int = 64 << 20
    """Largest mirrored request accepted (larger: RESOURCE_EXHAUSTED to Envoy, unrecorded)."""
    queue_size: int = 4096
    """Calls waiting to be recorded; when full, new ones are dropped (and counted)."""
    queue_max_bytes: int = 64 << 20
    """Request bytes waiting to be recorded; beyond this, calls are dropped (and counted)."""
    sample_rate: float = 0.01
    """Fraction of recorded inference requests kept whole as samples (0 disables)."""
    sample_max_bytes: int = 1 << 20
    """Requests larger than this are never sampled."""
    sample_seed: int | None = None
    """Seed of the sampling random generator; None seeds from the OS."""
    record_batch_size: int = 1024
    """At most this many calls are parsed and handed to the recorder at once."""
    record_interval_seconds: float = 0.1
    """The recorder runs at most this often; calls queue up in between, so under load
    parsing and disk writes happen in a few large batches instead of once per call."""
    recording_restart_seconds: tuple[float, float] = (0.5, 30.0)
    """The first and the longest wait before a recording task that died is started again
    (its process goes on); the wait doubles while it keeps dying within a minute."""
    shape_store: ShapeStoreSettings = field(default_factory=ShapeStoreSettings)
    """The shape store the recorded calls are written into: its window, shape-set limit
    and sample budgets (the ``shape_store`` section of the sidecar's settings)."""

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "queue_size", "queue_max_bytes",
                     "record_batch_size"):
            self._check_positive(name)
        if self.max_message_bytes > TF_SERVING_MAX_MESSAGE_BYTES:
            self._refuse("max_message_bytes", f"must be at most {TF_SERVING_MAX_MESSAGE_BYTES}")
        if self.record_interval_seconds < 0:
            self._refuse("record_interval_seconds", "must not be negative")
        if not 0.0 <= self.sample_rate <= 1.0:
            self._refuse("sample_rate", "must be within [0, 1]")
        first, longest = self.recording_restart_seconds
        if not 0 < first <= longest:
            self._refuse("recording_restart_seconds", "must be (first, longest) seconds, "
                         "0 < first <= longest")
        if self.sample_max_bytes < 0:
            self._refuse("sample_max_bytes", "must not be negative")

    def _check_positive(self, name: str) -> None:
        if getattr(self, name) < 1:
            self._refuse(name, "must be at least 1")

    def _refuse(self, name: str, problem: str) -> None:
        raise TapSettingsError(
            f"{type(self).__name__}.{name} {problem}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class RestRecording:
    """The recorder's REST side: where Envoy mirrors REST calls, and where the served
    models' signatures (which type their JSON) are read."""

    settings: RecorderSettings
    """Where it listens and what it may queue and sample."""
    serving_base: Path
    """TF Serving's model base paths (``<model>/<version>/saved_model.pb``)."""
