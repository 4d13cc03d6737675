"""The input dtypes of a served model's signatures, read from its ``saved_model.pb``.

JSON cannot tell float32 from float64 or int32 from int64; TF Serving types a REST request
by the signature it runs, so the REST recorder does too. Only the ``serve`` MetaGraphDef's
``meta_info_def`` and ``signature_def`` are parsed: the file is mapped and the graph
(hundreds of MB once weights are frozen into it) is skipped over, never read. Results are
cached by path, modification time and size, so a new version is read once.
"""

from __future__ import annotations

import logging
import mmap
from collections import OrderedDict
from pathlib import Path
from typing import Final, TypeVar

from google.protobuf.message import DecodeError
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from sidecar.tfserving.layout import published_versions
from sidecar.tfserving.model_names import is_model_name

_LOG = logging.getLogger(__name__)

CACHED_VERSIONS: Final = 256
"""Most model versions whose signatures are kept in memory, and most models whose newest
version is (least recently used go)."""

_META_GRAPHS: Final = 2  # SavedModel.meta_graphs
_KEPT_FIELDS: Final = (1, 5)  # MetaGraphDef.meta_info_def, MetaGraphDef.signature_def
_LENGTH_DELIMITED: Final = 2

Signatures = dict[str, dict[str, str]]
"""Signature key -> input name -> dtype name (``DT_FLOAT``)."""

_Value = TypeVar("_Value")


class SignatureDtypes:
    """Input dtypes of the models under a serving base, as TF Serving would load them."""

    def __init__(self, serving_base: Path | None) -> None:
        """``serving_base`` holds ``<model>/<version>/saved_model.pb``; None knows no model."""
        self._base = serving_base
        self._cache: OrderedDict[Path, tuple[tuple[int, int], Signatures]] = OrderedDict()
        self._newest: OrderedDict[Path, tuple[int, int]] = OrderedDict()

    def input_dtypes(self, model: str, version: int | None, signature: str
                     ) -> dict[str, str] | None:
        """Input name -> dtype name of ``signature`` of ``version`` of ``model`` (the newest
        published version when None); None when the model, version or signature is unknown
        or its ``saved_model.pb`` cannot be read."""
        if self._base is None or not is_model_name(model):
            return None
        if version is None:
            version = self._newest_version(self._base / model)
            if version is None:
                return None
        signatures = self._signatures(self._base / model / str(version) / "saved_model.pb")
        return None if signatures is None else signatures.get(signature)

    def _newest_version(self, model_dir: Path) -> int | None:
        # Publishing renames a version into the model directory, which changes its mtime:
        # the listing is read again only then (a stat per call instead of a listing).
        try:
            mtime = model_dir.stat().st_mtime_ns
        except OSError:
            return None
        cached = self._newest.get(model_dir)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        versions = published_versions(model_dir)
        if not versions:
            return None
        _bounded_put(self._newest, model_dir, (mtime, versions[-1]))
        return versions[-1]

    def _signatures(self, path: Path) -> Signatures | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == key:
            self._cache.move_to_end(path)
            return cached[1]
        try:
            signatures = read_signatures(path)
        except (OSError, ValueError, DecodeError) as error:
            _LOG.warning("cannot read the signatures of %s (%s); REST requests to it are "
                         "typed from their JSON values", path, error)
            return None
        _bounded_put(self._cache, path, (key, signatures))
        return signatures


def _bounded_put(cache: OrderedDict[Path, _Value], path: Path, value: _Value) -> None:
    cache[path] = value
    cache.move_to_end(path)
    if len(cache) > CACHED_VERSIONS:
        cache.popitem(last=False)


def read_signatures(path: Path) -> Signatures:
    """The input dtypes of every signature of the ``serve`` MetaGraphDef in ``path`` (a
    ``saved_model.pb``); ValueError or DecodeError when it is not one."""
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        meta_graphs = [meta_graph_pb2.MetaGraphDef.FromString(_kept_fields(data, start, end))
                       for start, end in _fields(data, 0, len(data), (_META_GRAPHS,))]
    serving = [graph for graph in meta_graphs if "serve" in graph.meta_info_def.tags]
    chosen = (serving or meta_graphs)[:1]
    if not chosen:
        raise ValueError("no MetaGraphDef")
    return {key: {name: types_pb2.DataType.Name(info.dtype) for name, info in sig.inputs.items()}
            for key, sig in chosen[0].signature_def.items()}


def _kept_fields(data: mmap.mmap, start: int, end: int) -> bytes:
    # Protobuf parses concatenated fields as one message: the kept fields' bytes, with
    # their tags, are a MetaGraphDef without its graph.
    return b"".join(data[tag_start:field_end]
                    for tag_start, field_end in _fields(data, start, end, _KEPT_FIELDS, True))


def _fields(data: mmap.mmap, start: int, end: int, wanted: tuple[int, ...],
            with_tag: bool = False) -> list[tuple[int, int]]:
    """Byte ranges of the length-delimited fields numbered ``wanted`` in data[start:end]
    (their payloads, or with ``with_tag`` the whole field); other fields are skipped."""
    found = []
    position = start
    while position < end:
        tag_start = position
        tag, position = _varint(data, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            _, position = _varint(data, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        elif wire_type == _LENGTH_DELIMITED:
            size, position = _varint(data, position)
            if number in wanted:
                found.append((tag_start if with_tag else position, position + size))
            position += size
        else:
            raise ValueError(f"unexpected wire type {wire_type} at byte {tag_start}")
    if position != end:
        raise ValueError("a field runs past its message")
    return found


def _varint(data: mmap.mmap, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError(f"truncated or overlong varint at byte {position}")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
