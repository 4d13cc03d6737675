"""Checks on request fields: model names, version numbers, operation names, sizes.

Each raises :class:`~sidecar.admin.errors.InvalidRequestError` naming the field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from sidecar.admin.errors import InvalidRequestError

MODEL_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A model name: a letter or digit, then up to 127 letters, digits, '.', '_' or '-'."""

MAX_VERSION: Final = (1 << 63) - 1
"""Versions are positive int64 values."""

OPERATION_PREFIX: Final = "operations/"
"""Every operation name starts with this."""

_OPERATION_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,200}")


def model_name(value: str, field: str = "model") -> str:
    """``value`` if it is a valid model name (it then cannot leave a model base directory)."""
    if not MODEL_NAME_PATTERN.fullmatch(value):
        raise InvalidRequestError(
            field, value, "is not a model name",
            "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
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


def version_number(value: int, field: str = "version") -> int:
    """``value`` if it is a positive int64."""
    if not 1 <= value <= MAX_VERSION:
        raise InvalidRequestError(
            field, value, "is not a version number", f"use a whole number from 1 to {MAX_VERSION}"
        )
    return value


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
