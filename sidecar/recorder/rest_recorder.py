"""The REST shape recorder: the HTTP server Envoy mirrors a sample of REST inference calls
to (``:predict``, ``:classify``, ``:regress``).

Like the gRPC recorder (:mod:`sidecar.recorder.recorder_server`) it is never on a client's path:
Envoy sends a copy and does not wait. Every request is answered at once with ``200 {}``
and queued (bounded; a full queue drops calls, counted); the recording worker reads
the queued calls' JSON (:mod:`sidecar.recorder.rest_shapes`) and records them in batches,
off the event loop. HTTP/1.1 only, as Envoy's recorder cluster speaks it, with keep-alive,
``Content-Length`` or chunked bodies, gzip-compressed or not.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable
from typing import Final

from sidecar.base.fanout import fan_out
from sidecar.recorder.errors import TapStartError, UnparsableRequestError
from sidecar.recorder.recorder_server import RecorderServer
from sidecar.recorder.recording import (
    PendingCall,
    Recorder,
    RecordingTask,
    RecordingWorker,
    RecordQueue,
)
from sidecar.recorder.rest_shapes import observations_from_rest
from sidecar.recorder.settings import RecorderSettings
from sidecar.recorder.signature_dtypes import SignatureDtypes
from sidecar.recorder.stats import TapObserver, TapStats
from sidecar.shapes import ShapeObservation
from sidecar.tfserving.rest_api import method_label

_OK: Final = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
              b"content-length: 2\r\n\r\n{}")
_TOO_LARGE: Final = (b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n"
                     b"connection: close\r\n\r\n")
_GZIP_MAGIC: Final = b"\x1f\x8b"
MAX_HEAD_BYTES: Final = 64 << 10
"""Longest request line and headers accepted (Envoy's own default limit is 60 KiB)."""


class _HttpListener:
    """The listening socket and open connections, stopped as a gRPC server stops: so
    :class:`RecorderServer` runs the REST recorder as it runs the gRPC one."""

    def __init__(self, server: asyncio.Server, connections: set[asyncio.StreamWriter]) -> None:
        self._server = server
        self._connections = connections

    async def stop(self, grace: float | None) -> None:
        """Take no more connections and close the open ones (Envoy keeps them open)."""
        self._server.close()
        for writer in list(self._connections):
            writer.close()


class RestRequests:
    """TF Serving REST calls: `PendingCall.method` is the path, `request` the JSON body
    (gzip-compressed or not)."""

    def __init__(self, signatures: SignatureDtypes, max_bytes: int,
                 sample_max_bytes: int) -> None:
        self._signatures = signatures
        self._max_bytes = max_bytes
        self._sample_max_bytes = sample_max_bytes

    def observations(self, call: PendingCall, sample: bool) -> list[ShapeObservation]:
        """The call's JSON, read as TF Serving reads it (see `observations_from_rest`);
        sampled only when it is small once inflated too (a sample's values are built)."""
        body = _uncompressed(call.request, self._max_bytes)
        return observations_from_rest(call.method, body, call.received_at,
                                      sample and len(body) <= self._sample_max_bytes,
                                      self._signatures)

    def method(self, call: PendingCall) -> str:
        """The label of the call's verb (`rest:predict`, ...)."""
        return method_label(call.method)


async def serve_rest_recorder(
    settings: RecorderSettings,
    recorder: Recorder,
    signatures: SignatureDtypes,
    observer: TapObserver | None = None,
    clock: Callable[[], float] = time.time,
    share: Callable[[], float] | None = None,
) -> RecorderServer:
    """Start the REST recorder on the running event loop; return it once it accepts
    calls (``port``, ``stats``, ``wait_recorded()``, ``stop()``). ``signatures`` types the
    JSON as the served models do."""
    stats = TapStats()
    observers: TapObserver = stats if observer is None else fan_out([stats, observer])
    queue = RecordQueue(settings.queue_size, settings.queue_max_bytes)
    connections: set[asyncio.StreamWriter] = set()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, headers = _parse_head(head)
                body = await _read_body(reader, headers, settings.max_message_bytes)
                if body is None:
                    writer.write(_TOO_LARGE)
                    break
                if method == "POST" and not queue.offer(PendingCall(path, body, clock())):
                    observers.dropped(method_label(path))
                writer.write(_OK)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                ValueError):
            pass  # a closed or broken connection: Envoy opens another
        finally:
            connections.discard(writer)
            writer.close()

    try:
        server = await asyncio.start_server(connection, settings.listen.host,
                                            settings.listen.port, limit=MAX_HEAD_BYTES)
    except (OSError, ValueError) as error:
        raise TapStartError(f"the REST recorder cannot listen on {settings.listen} ({error}); "
                            "choose a free address") from error
    parser = RestRequests(signatures, settings.max_message_bytes, settings.sample_max_bytes)
    recording = RecordingTask(RecordingWorker(queue, recorder, observers, settings, parser,
                                              share),
                              "rest-shape-recording", observers,
                              settings.recording_restart_seconds)
    bound: int = server.sockets[0].getsockname()[1]
    return RecorderServer(_HttpListener(server, connections), recording, bound, stats)


def _uncompressed(body: bytes, limit: int) -> bytes:
    """``body``, gunzipped if it is gzip (TF Serving reads ``Content-Encoding: gzip``
    bodies; JSON never starts with gzip's magic bytes); UnparsableRequestError when it
    does not inflate or inflates past ``limit`` bytes."""
    if not body.startswith(_GZIP_MAGIC):
        return body
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise UnparsableRequestError(f"a gzip body does not inflate ({error})") from error
    if len(data) > limit:
        raise UnparsableRequestError(f"a gzip body inflates past {limit} bytes")
    return data


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return method, path, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str],
                     max_bytes: int) -> bytes | None:
    """The request body; None when it is larger than ``max_bytes``."""
    if headers.get("transfer-encoding", "").lower() != "chunked":
        length = int(headers.get("content-length") or 0)
        return await reader.readexactly(length) if length <= max_bytes else None
    chunks: list[bytes] = []
    total = 0
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return b"".join(chunks)
        total += size
        if total > max_bytes:
            return None
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)  # the chunk's CRLF
