"""Small JSON files in the shared store: created exclusively, replaced atomically, read whole.

The store's coordination rests on one primitive a shared filesystem makes atomic at its
server: creating a name only if it does not exist. :func:`converter.write_new` does that
(a flushed temporary ``link()``-ed to its final name), so readers never see a record half
written, and of two replicas creating one name exactly one succeeds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from durable import write_atomically, write_new
from sidecar.fleet.errors import FleetStoreError


def create_exclusively(path: Path, record: Mapping[str, Any]) -> bool:
    """Create ``path`` holding ``record`` if no file has that name; True if this call made it.

    FleetStoreError when the volume refuses (full, read-only, gone).
    """
    try:
        return write_new(path, _encode(record))
    except OSError as exc:
        raise FleetStoreError.from_os_error(exc, action=f"create {path.name}", path=path) from exc


def replace(path: Path, record: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``record`` atomically (readers see the old or the new one)."""
    try:
        write_atomically(path, _encode(record))
    except OSError as exc:
        raise FleetStoreError.from_os_error(exc, action=f"write {path.name}", path=path) from exc


def read(path: Path) -> dict[str, Any] | None:
    """The record at ``path``; None when there is none, or it is not a JSON object (a file
    the store never writes so: it is ignored rather than trusted)."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FleetStoreError.from_os_error(exc, action=f"read {path.name}", path=path) from exc
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def names(directory: Path) -> list[str]:
    """The names in ``directory`` that are not temporary (:func:`is_temporary`), sorted; none
    when it does not exist. FleetStoreError when it cannot be listed."""
    try:
        return sorted(name for name in os.listdir(directory) if not is_temporary(name))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise FleetStoreError.from_os_error(exc, action="list", path=directory) from exc


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a record being created or replaced: every such name in the store
    is hidden (``.<name>.new-<token>``, ``.<name>.tmp-<token>``)."""
    return name.startswith(".")


def _encode(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()

