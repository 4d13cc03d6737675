"""Settings of the tap: where it listens, where it forwards, and what it may buffer."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.tap.errors import TapSettingsError

# TF Serving itself accepts messages up to INT32_MAX bytes.
TF_SERVING_MAX_MESSAGE_BYTES = (1 << 31) - 1


@dataclass(frozen=True)
class TapSettings:
    """Everything the tap needs; validated on construction, trusted afterwards."""

    listen: str
    """`host:port` the tap serves on (port 0 picks a free port; see `TapServer.port`)."""
    upstream: str
    """`host:port` of TF Serving's gRPC endpoint; every allowed call is forwarded there."""
    max_message_bytes: int = 64 << 20
    """Largest request or response the tap passes, both ways (larger: RESOURCE_EXHAUSTED)."""
    queue_size: int = 4096
    """Calls waiting to be recorded; when full, new ones are dropped (and counted)."""
    queue_max_bytes: int = 64 << 20
    """Request bytes waiting to be recorded; beyond this, calls are dropped (and counted)."""
    sample_rate: float = 0.01
    """Fraction of successful inference requests kept whole as samples (0 disables)."""
    sample_max_bytes: int = 1 << 20
    """Requests larger than this are never sampled."""
    sample_seed: int | None = None
    """Seed of the sampling random generator; None seeds from the OS."""
    record_batch_size: int = 1024
    """At most this many calls are parsed and handed to the recorder at once."""
    record_interval_seconds: float = 0.1
    """The recorder runs at most this often; calls queue up in between, so under load
    parsing and disk writes happen in a few large batches instead of once per call."""
    upstream_max_reconnect_backoff_ms: int = 1000
    """Longest wait between reconnect attempts after the upstream went away, so a
    restarted TF Serving is used again within about this time."""

    def __post_init__(self) -> None:
        for name in ("listen", "upstream"):
            host, _, port = getattr(self, name).rpartition(":")
            if not host or not port.isdigit():
                raise TapSettingsError(
                    f"TapSettings.{name} must be host:port, got {getattr(self, name)!r}"
                )
        positive = (
            "max_message_bytes",
            "queue_size",
            "queue_max_bytes",
            "record_batch_size",
            "upstream_max_reconnect_backoff_ms",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise TapSettingsError(
                    f"TapSettings.{name} must be at least 1, got {getattr(self, name)}"
                )
        if self.max_message_bytes > TF_SERVING_MAX_MESSAGE_BYTES:
            raise TapSettingsError(
                f"TapSettings.max_message_bytes must be at most {TF_SERVING_MAX_MESSAGE_BYTES}, "
                f"got {self.max_message_bytes}"
            )
        if self.record_interval_seconds < 0:
            raise TapSettingsError(
                "TapSettings.record_interval_seconds must not be negative, "
                f"got {self.record_interval_seconds}"
            )
        if not 0.0 <= self.sample_rate <= 1.0:
            raise TapSettingsError(
                f"TapSettings.sample_rate must be within [0, 1], got {self.sample_rate}"
            )
        if self.sample_max_bytes < 0:
            raise TapSettingsError(
                f"TapSettings.sample_max_bytes must not be negative, got {self.sample_max_bytes}"
            )
