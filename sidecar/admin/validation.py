"""Checks on request fields: model names, version numbers, operation names, sizes.

Each raises :class:`~sidecar.admin.errors.InvalidRequestError` naming the field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from sidecar.admin.errors import InvalidRequestError
from sidecar.tfserving import numbering
from sidecar.tfserving.model_names import MODEL_NAME_RULE, model_name_problem

OPERATION_PREFIX: Final = "operations/"
"""Every operation name starts with this."""

_OPERATION_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,200}")


def model_name(value: str, field: str = "model") -> str:
    """``value`` if it is a model name the sidecar serves (:mod:`sidecar.tfserving.model_names`;
    it then cannot leave a model base directory)."""
    if model_name_problem(value) is not None:
        raise InvalidRequestError(
            field, value, "is not a model name the sidecar serves", MODEL_NAME_RULE
        )
    return value


def model_dir(base: Path, name: str, field: str = "model") -> Path:
    """``base/name`` after checking that it resolves to a direct child of ``base``.

    A symlinked model directory pointing elsewhere is refused.
    """
    model_name(name, field)
    path = base / name
    resolved = Path(os.path.realpath(path))
    if resolved.parent != Path(os.path.realpath(base)):
        raise InvalidRequestError(
            field, name, f"resolves outside {base}",
            "model directories must be real directories inside the base directory",
        )
    return path


def incoming_version(value: int, field: str = "version") -> int:
    """``value`` if it is an incoming version number the sidecar can serve
    (:func:`sidecar.tfserving.numbering.check_incoming_version`)."""
    try:
        return numbering.check_incoming_version(value)
    except numbering.VersionNumberError as exc:
        raise InvalidRequestError(
            field, value, "is not an incoming version the sidecar can serve", exc.fix
        ) from exc


def operation_name(value: str, field: str = "name") -> str:
    """``value`` if it looks like ``operations/<id>``."""
    if not value.startswith(OPERATION_PREFIX) or not _OPERATION_ID.fullmatch(
        value[len(OPERATION_PREFIX):]
    ):
        raise InvalidRequestError(
            field, value, "is not an operation name",
            "use the name StartConversion or ListOperations returned, e.g. operations/m-1-0a1b",
        )
    return value


def bounded_count(value: int, field: str, *, default: int, maximum: int) -> int:
    """``value``, or ``default`` for 0; refused below 0 or above ``maximum``."""
    if value == 0:
        return default
    if not 1 <= value <= maximum:
        raise InvalidRequestError(
            field, value, "is out of range", f"use 0 for the default ({default}) or 1 to {maximum}"
        )
    return value
