"""Envoy's admin API on loopback, as the sidecar uses it: the mirrored share, changed live,
and the count of calls clients sent, read from its stats."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from sidecar.base.errors import ConfigError
from sidecar.config.address import Address
from sidecar.envoy.bootstrap import (
    CLIENT_STAT_PREFIX,
    MIRROR_DENOMINATOR,
    MIRROR_RUNTIME_KEY,
    REST_MIRROR_RUNTIME_KEY,
    REST_STAT_PREFIX,
    mirror_runtime_value,
)

_CLIENT_REQUESTS = tuple(f"http.{prefix}.downstream_rq_total"
                         for prefix in (CLIENT_STAT_PREFIX, REST_STAT_PREFIX))
_CLIENT_BYTES = tuple(f"http.{prefix}.downstream_cx_rx_bytes_total"
                      for prefix in (CLIENT_STAT_PREFIX, REST_STAT_PREFIX))


@dataclass(frozen=True)
class EnvoyAdmin:
    """A client of one Envoy's admin API."""

    address: Address
    timeout_seconds: float = 2.0

    def set_mirror_fraction(self, fraction: float) -> None:
        """Mirror ``fraction`` (0 to 1) of inference calls, gRPC and REST, from now on."""
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(field="mirror_fraction", value=fraction, source="the sidecar",
                              problem="is not within [0, 1]", fix="give a share such as 0.1")
        value = mirror_runtime_value(fraction)
        query = urllib.parse.urlencode({MIRROR_RUNTIME_KEY: value, REST_MIRROR_RUNTIME_KEY: value})
        self._call("POST", f"/runtime_modify?{query}")

    def mirror_fraction(self) -> float | None:
        """The share set live, or None while the bootstrap's default is in force."""
        entries = json.loads(self._call("GET", "/runtime")).get("entries", {})
        entry = entries.get(MIRROR_RUNTIME_KEY)
        if entry is None or entry.get("final_value") in (None, ""):
            return None
        return int(entry["final_value"]) / MIRROR_DENOMINATOR

    def client_requests(self) -> int:
        """Requests clients sent through Envoy since it started (gRPC and REST)."""
        return self.client_traffic()[0]

    def client_traffic(self) -> tuple[int, int]:
        """Requests, and bytes received, from clients since Envoy started (gRPC and REST)."""
        query = urllib.parse.urlencode(
            {"filter": "downstream_(rq_total|cx_rx_bytes_total)$", "format": "json"})
        stats = json.loads(self._call("GET", f"/stats?{query}")).get("stats", [])
        values = {stat.get("name"): int(stat.get("value", 0)) for stat in stats}
        return (sum(values.get(name, 0) for name in _CLIENT_REQUESTS),
                sum(values.get(name, 0) for name in _CLIENT_BYTES))

    def _call(self, method: str, path: str) -> str:
        request = urllib.request.Request(f"http://{self.address}{path}", method=method)
        with urllib.request.urlopen(request, timeout=self.timeout_seconds) as answer:
            return str(answer.read().decode("utf-8"))


@dataclass(frozen=True)
class MirrorShare:
    """The share of calls Envoy mirrors now, read from its admin API; ``default`` (the
    bootstrap's) while no share was set live or Envoy cannot be asked. Picklable, so the
    recorder's process can be handed one."""

    admin: Address
    default: float

    def __call__(self) -> float:
        """The share in force."""
        try:
            live = EnvoyAdmin(self.admin).mirror_fraction()
        except (OSError, ValueError, urllib.error.URLError):
            return self.default
        return self.default if live is None else live
