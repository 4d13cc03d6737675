"""Settings of the admin gRPC server: where it listens, TLS, bearer token."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import grpc

from sidecar.admin.errors import AdminSettingsError
from sidecar.config.address import Address
from sidecar.config.defaults import DEFAULT_ADMIN_LISTEN

_SOURCE: Final = "admin settings"


@dataclass(frozen=True)
class AdminSettings:
    """How the admin API is served. The values the sidecar's settings give (address, TLS
    files, token, grace) were checked when they were loaded (``AdminSection``); only the
    server's own knobs are checked here."""

    listen: Address = DEFAULT_ADMIN_LISTEN
    """Where it listens; localhost by default. Port 0 picks a free one."""

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
