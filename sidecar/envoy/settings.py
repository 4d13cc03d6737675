"""What Envoy is set up from: the addresses it joins and how much it mirrors.

Addresses come parsed (:class:`~sidecar.config.address.Address`); the rest is validated
once here, and :mod:`sidecar.envoy.bootstrap` trusts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.base.errors import ConfigError
from sidecar.config.address import Address

_SOURCE = "the Envoy settings"


@dataclass(frozen=True)
class EnvoySettings:
    """Everything Envoy's bootstrap is generated from; validated on construction."""

    listen: Address
    """Where clients call (gRPC): the port the Python tap had."""
    upstream: Address
    """TF Serving's gRPC port; every allowed call goes there."""
    recorder: Address
    """The shape recorder's gRPC port, where a sample of inference calls is mirrored."""
    admin: Address
    """Envoy's admin API (runtime changes, stats); loopback only: it can stop Envoy."""
    stats_listen: Address | None = None
    """Where Prometheus scrapes Envoy's own stats (only ``/stats/prometheus`` answers)."""
    mirror_fraction: float = 1.0
    """Share of inference calls mirrored to the recorder at start (0 to 1, in steps of 0.01)."""
    connect_timeout_seconds: float = 1.0
    """How long Envoy waits for a TCP connection to TF Serving before UNAVAILABLE."""
    workers: int | None = None
    """Envoy's worker threads (``--concurrency``); None: one per CPU, Envoy's default."""
    max_request_bytes: int = 64 << 20
    """Buffer limit per connection and stream: the largest message Envoy buffers while it
    mirrors a call. Larger calls still pass (Envoy streams them), unmirrored."""
    rest_listen: Address | None = None
    """Where clients call TF Serving's REST API (HTTP/1.1 and HTTP/2); None: no REST front.
    Given together with ``rest_upstream`` and ``rest_recorder``."""
    rest_upstream: Address | None = None
    """TF Serving's REST port (``--rest_api_port``); every allowed REST call goes there."""
    rest_recorder: Address | None = None
    """The REST shape recorder's HTTP port, where a sample of ``:predict``, ``:classify``
    and ``:regress`` calls is mirrored (the share starts at ``mirror_fraction``)."""

    def __post_init__(self) -> None:
        if not self.admin.is_loopback:
            raise ConfigError(field="envoy admin", value=str(self.admin), source=_SOURCE,
                              problem="is not a loopback address; Envoy's admin API can "
                              "change its runtime and shut it down",
                              fix="use 127.0.0.1:<port>")
        if not 0.0 <= self.mirror_fraction <= 1.0:
            raise ConfigError(field="mirror_fraction", value=self.mirror_fraction,
                              source=_SOURCE, problem="is not within [0, 1]",
                              fix="give a share such as 0.1 (10% of calls)")
        if self.connect_timeout_seconds <= 0:
            raise ConfigError(field="connect_timeout_seconds",
                              value=self.connect_timeout_seconds, source=_SOURCE,
                              problem="must be positive", fix="give e.g. 1.0")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(field="workers", value=self.workers, source=_SOURCE,
                              problem="must be at least 1", fix="give e.g. 2, or leave it unset")
        if self.max_request_bytes < 1:
            raise ConfigError(field="max_request_bytes", value=self.max_request_bytes,
                              source=_SOURCE, problem="must be at least 1",
                              fix="give e.g. 67108864 (64 MiB)")
        rest = {"rest_listen": self.rest_listen, "rest_upstream": self.rest_upstream,
                "rest_recorder": self.rest_recorder}
        missing = sorted(name for name, value in rest.items() if value is None)
        if missing and len(missing) < len(rest):
            raise ConfigError(field=missing[0], value=None, source=_SOURCE,
                              problem="is missing; the REST front needs rest_listen, "
                              "rest_upstream and rest_recorder together",
                              fix=f"set {', '.join(missing)} too, or none of the three")

    @property
    def fronts_rest(self) -> bool:
        """True when Envoy also fronts TF Serving's REST API."""
        return self.rest_listen is not None
