"""Envoy's admin API on loopback, as the sidecar uses it: the mirrored share, changed live,
and the counts of calls Envoy routed, read from its stats."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass

from sidecar.envoy.bootstrap import (
    CLIENT_STAT_PREFIX,
    MIRROR_DENOMINATOR,
    MIRROR_RUNTIME_KEY,
    mirror_runtime_value,
)
from sidecar.envoy.settings import Address
from sidecar.errors import ConfigError


@dataclass(frozen=True)
class EnvoyAdmin:
    """A client of one Envoy's admin API."""

    address: Address
    timeout_seconds: float = 2.0

    def set_mirror_fraction(self, fraction: float) -> None:
        """Mirror ``fraction`` (0 to 1) of inference calls from now on."""
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(field="mirror_fraction", value=fraction, source="the sidecar",
                              problem="is not within [0, 1]", fix="give a share such as 0.1")
        query = urllib.parse.urlencode({MIRROR_RUNTIME_KEY: mirror_runtime_value(fraction)})
        self._call("POST", f"/runtime_modify?{query}")

    def mirror_fraction(self) -> float | None:
        """The share set live, or None while the bootstrap's default is in force."""
        entries = json.loads(self._call("GET", "/runtime")).get("entries", {})
        entry = entries.get(MIRROR_RUNTIME_KEY)
        if entry is None or entry.get("final_value") in (None, ""):
            return None
        return int(entry["final_value"]) / MIRROR_DENOMINATOR

    def client_requests(self) -> int:
        """Requests clients sent through Envoy since it started."""
        name = f"http.{CLIENT_STAT_PREFIX}.downstream_rq_total"
        query = urllib.parse.urlencode({"filter": f"^{name}$", "format": "json"})
        stats = json.loads(self._call("GET", f"/stats?{query}")).get("stats", [])
        return sum(int(stat.get("value", 0)) for stat in stats if stat.get("name") == name)

    def _call(self, method: str, path: str) -> str:
        request = urllib.request.Request(f"http://{self.address}{path}", method=method)
        with urllib.request.urlopen(request, timeout=self.timeout_seconds) as answer:
            return str(answer.read().decode("utf-8"))
