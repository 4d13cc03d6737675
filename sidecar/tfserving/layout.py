"""Names inside ``serving/<model>/``: what TF Serving sees (numeric) and what it ignores.

TF Serving treats only all-digit child names as versions, so every name the
sidecar uses for work in progress starts with a dot and is never numeric.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

from sidecar.base.errors import StorageError
from sidecar.base.faults import FaultArea
from sidecar.tfserving.model_names import is_model_name
from sidecar.tfserving.numbering import served_version_from_name

STAGING_PREFIX: Final = ".staging-"
"""``.staging-<version>-<token>``: a version being written."""

REMOVING_PREFIX: Final = ".removing-"
"""``.removing-<version>-<token>``: a version taken out of view, being deleted."""

ROLLED_BACK_PREFIX: Final = ".rolled-back-"
"""``.rolled-back-<version>``: a version rolled back, kept for inspection."""

WITHDRAWN_PREFIX: Final = ".withdrawn-"
"""``.withdrawn-<version>``: a version whose source left incoming, kept to be restored."""


def random_token() -> str:
    """A short random suffix that keeps hidden work names unique."""
    return secrets.token_hex(4)


def staging_name(version: int, token: str) -> str:
    """The staging directory name for ``version``."""
    return f"{STAGING_PREFIX}{version}-{token}"


def removing_name(version: int, token: str) -> str:
    """The name a version gets just before it is deleted."""
    return f"{REMOVING_PREFIX}{version}-{token}"


def is_leftover_name(name: str) -> bool:
    """Whether ``name`` is unfinished work (staging or removal) that a restart deletes."""
    return name.startswith((STAGING_PREFIX, REMOVING_PREFIX))


def _listing(directory: Path, action: str) -> list[str]:
    """The names in ``directory`` of the serving base (none if it is missing); any other
    failure is a fault of the serving base's storage."""
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StorageError.from_os_error(exc, action=action, path=directory,
                                         area=FaultArea.SERVING) from exc


def published_versions(model_dir: Path) -> list[int]:
    """The versions TF Serving would see in ``model_dir``, ascending (empty if it is missing)."""
    names = _listing(model_dir, "list the published versions")
    versions = (served_version_from_name(name) for name in names)
    return sorted(
        v for v, name in zip(versions, names, strict=True)
        if v is not None and (model_dir / name).is_dir()
    )


def published_models(serving_base: Path) -> list[str]:
    """Model directories in ``serving_base`` holding at least one version, sorted (files
    there, such as TF Serving's model config, are not models)."""
    names = sorted(_listing(serving_base, "list the published models"))
    return [name for name in names
            if is_model_name(name) and (serving_base / name).is_dir()
            and published_versions(serving_base / name)]
