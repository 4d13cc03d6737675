"""A network address, ``host:port``, and its one parser.

Every address setting (the sidecar's ``*_listen`` and ``*upstream`` settings, the admin
API's, the recorder's, the metrics server's and Envoy's) is read by :meth:`Address.parse`,
so they all accept the same forms and refuse with the same words.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from sidecar.base.errors import ConfigError

MAX_PORT: Final = 65535
"""The highest TCP port."""


@dataclass(frozen=True)
class Address:
    """A ``host:port`` pair; the host is an IP address (IPv6 without brackets) or a DNS
    name. ``str()`` gives ``host:port``, ``[v6]:port`` for an IPv6 host."""

    host: str
    """An IP address or a DNS name."""

    port: int
    """The TCP port; 0 only where a setting asks the system for a free one."""

    @classmethod
    def parse(cls, text: object, field: str, source: str = "the settings", *,
              free_port: bool = False, can_be_off: bool = False,
              error_type: type[ConfigError] = ConfigError) -> Address:
        """``text`` (``host:port``, ``[v6]:port``) as an address, port 1-65535 (0 too with
        ``free_port``: the system picks one); ``error_type`` naming ``field``, ``source``
        and the fix (which offers an empty value, ``can_be_off``) when it is not one."""
        if isinstance(text, str):
            host, separator, port = text.strip().rpartition(":")
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
                bracketed = _is_ipv6(host)
            else:
                bracketed = ":" not in host  # an IPv6 host needs its brackets
            lowest = 0 if free_port else 1
            if (separator and host and bracketed and port.isdigit()
                    and lowest <= int(port) <= MAX_PORT):
                return cls(host, int(port))
        ports = "0 (a free port) to" if free_port else "1 to"
        off = ", or to an empty string (off)" if can_be_off else ""
        raise error_type(
            field=field, value=text, source=source,
            problem=f"is not host:port with a port from {ports} {MAX_PORT}",
            fix=f"set {field} to HOST:PORT, e.g. 127.0.0.1:8700 or [::1]:8700{off}",
        )

    @property
    def is_ip(self) -> bool:
        """True when the host is an IP address (no name to resolve)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def is_loopback(self) -> bool:
        """True when only this machine can reach the address."""
        if self.host == "localhost":
            return True
        return self.is_ip and ipaddress.ip_address(self.host).is_loopback

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False
