"""Small JSON files in the shared store: created exclusively, replaced atomically, read whole.

The store's coordination rests on one primitive a shared filesystem makes atomic at its
server: creating a name only if it does not exist. A record is written complete under a
temporary name first (through :func:`converter.write_atomically`, so it is flushed), then
``link()``-ed to its final name, which fails when the name exists. Readers therefore never
see a record half written. ``link`` is used instead of ``O_EXCL`` because NFS clients may
retransmit a LINK whose reply was lost and get EEXIST for their own success; the
temporary's link count tells (2 after a link that succeeded), the classic NFS lock idiom.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from converter import fsync_directory, write_atomically
from sidecar.fleet.errors import FleetStoreError

TEMPORARY_PREFIX: Final = ".tmp-"
"""How the names of records being created begin (``.tmp-<token>``); leftovers are swept."""


def create_exclusively(path: Path, record: Mapping[str, Any]) -> bool:
    """Create ``path`` holding ``record`` if no file has that name; True if this call made it.

    FleetStoreError when the volume refuses (full, read-only, gone).
    """
    temporary = path.with_name(f"{TEMPORARY_PREFIX}{secrets.token_hex(6)}")
    try:
        write_atomically(temporary, _encode(record))
        try:
            os.link(temporary, path)
            created = True
        except FileExistsError:
            # A retransmitted LINK can fail with EEXIST although the first one linked ours.
            created = os.stat(temporary).st_nlink == 2
        os.unlink(temporary)
        fsync_directory(path.parent)
    except OSError as exc:
        _remove_quietly(temporary)
        raise FleetStoreError.from_os_error(exc, action=f"create {path.name}", path=path) from exc
    return created


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


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a record being created or replaced: every such name in the store
    is hidden (``.tmp-<token>`` here, ``.<name>.tmp-<token>`` from write_atomically)."""
    return name.startswith(".")


def _encode(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _remove_quietly(path: Path) -> None:
    # Best effort on a volume that just refused: a leftover is hidden and swept later.
    with contextlib.suppress(OSError):
        path.unlink()
