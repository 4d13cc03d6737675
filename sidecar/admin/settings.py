"""Settings of the admin gRPC server: where it listens, TLS, bearer token. Validated once."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import grpc

from sidecar.admin.errors import AdminSettingsError
from sidecar.config.address import Address
from sidecar.config.defaults import DEFAULT_ADMIN_LISTEN

_TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 b64token
MIN_TOKEN_LENGTH: Final = 16
"""Shorter bearer tokens are refused (they can be guessed)."""

_SOURCE: Final = "admin settings"


@dataclass(frozen=True)
class AdminSettings:
    """How the admin API is served. Raises AdminSettingsError naming the field when invalid."""

    listen: str = DEFAULT_ADMIN_LISTEN
    """``host:port`` (``[v6]:port`` for IPv6); localhost by default. Port 0 picks a free one."""

    tls_cert_file: Path | None = None
    """PEM server certificate chain; with ``tls_key_file`` the API is served over TLS."""

    tls_key_file: Path | None = None
    """PEM private key of ``tls_cert_file``."""

    tls_client_ca_file: Path | None = None
    """PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)."""

    token: str | None = field(default=None, repr=False)
    """Bearer token every call except health checks must carry
    (``authorization: Bearer <token>``); None: no token is asked for."""

    grace_seconds: float = 10.0
    """How long :meth:`AdminServer.stop` lets running calls finish."""

    max_workers: int = 8
    """Threads serving calls."""

    def __post_init__(self) -> None:
        Address.parse(self.listen, "AdminSettings.listen", _SOURCE, free_port=True,
                      error_type=AdminSettingsError)
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            self._refuse("tls_cert_file", self.tls_cert_file, "and tls_key_file go together",
                         "set both the certificate and its key, or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            self._refuse("tls_client_ca_file", self.tls_client_ca_file,
                         "needs TLS (mutual TLS is TLS with client certificates)",
                         "set tls_cert_file and tls_key_file too")
        for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                self._refuse(name, path, "is not a readable file", "give the PEM file's path")
        if self.token is not None and (
            len(self.token) < MIN_TOKEN_LENGTH or not _TOKEN.fullmatch(self.token)
        ):
            self._refuse("token", "<hidden>",
                         f"is not a bearer token of at least {MIN_TOKEN_LENGTH} characters",
                         "use e.g. the output of `openssl rand -hex 32`")
        if not math.isfinite(self.grace_seconds) or self.grace_seconds < 0:
            self._refuse("grace_seconds", self.grace_seconds, "is not a number >= 0", "use e.g. 10")
        if self.max_workers < 1:
            self._refuse("max_workers", self.max_workers, "is below 1", "use e.g. 8")

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS credentials read from the files, or None for plaintext."""
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        cert = self._read("tls_cert_file", self.tls_cert_file)
        key = self._read("tls_key_file", self.tls_key_file)
        client_ca = None
        if self.tls_client_ca_file is not None:
            client_ca = self._read("tls_client_ca_file", self.tls_client_ca_file)
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )

    def _read(self, name: str, path: Path) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            self._refuse(name, path, f"cannot be read ({exc.strerror})",
                         "make the file readable by the sidecar's user")
            raise  # _refuse raised

    @staticmethod
    def _refuse(name: str, value: object, problem: str, fix: str) -> None:
        raise AdminSettingsError(
            field=f"AdminSettings.{name}", value=value, source=_SOURCE, problem=problem, fix=fix
        )
