"""The forwarding half of the tap: raw-bytes gRPC handlers that call the upstream unchanged."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc import aio

from sidecar.tap.methods import ForwardedMethod
from sidecar.tap.recording import PendingCall, RecordQueue
from sidecar.tap.stats import TapObserver

# The upstream's deadline is the client's, taken a moment after `started`, so it passes at
# or after started + timeout; the slack only absorbs timer rounding.
_DEADLINE_SLACK_SECONDS = 0.001

# Metadata the gRPC runtime sets per hop; forwarding it would duplicate or conflict.
_HOP_METADATA = frozenset({"user-agent", "te", "content-type", "host"})

Metadata = Sequence[tuple[str, str | bytes]]


def forwardable_metadata(metadata: Metadata | None) -> list[tuple[str, str | bytes]]:
    """The client's metadata minus what gRPC itself sets on each hop."""
    if not metadata:
        return []
    return [
        (key, value)
        for key, value in metadata
        if key not in _HOP_METADATA and not key.startswith((":", "grpc-"))
    ]


class ForwardingHandlers:
    """Serves each `ForwardedMethod` by calling the same method on `channel`, bytes in,
    bytes out, with the client's metadata and remaining deadline; the upstream's status,
    details and metadata go back to the client as they came.

    Both sides use gRPC's registered methods (the server finds the handler and the channel
    the method path in the core, not per call in Python); methods not listed are answered
    refused by `sidecar.tap.refusal.RefusingHandler`.

    A call the client gives up on (it cancels, or its own deadline passes) is reported to
    `observer.abandoned`, never as TF Serving's answer: it says nothing about TF Serving's
    health."""

    def __init__(
        self,
        methods: Sequence[ForwardedMethod],
        channel: aio.Channel,
        queue: RecordQueue,
        observer: TapObserver,
        clock: Callable[[], float],
    ) -> None:
        self._queue = queue
        self._observer = observer
        self._clock = clock
        self._by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        for method in methods:
            upstream = channel.unary_unary(method.path, _registered_method=True)
            handler = grpc.unary_unary_rpc_method_handler(self._forwarder(method, upstream))
            self._by_service.setdefault(method.service, {})[method.name] = handler

    def register(self, server: aio.Server) -> None:
        """Add every forwarded method to `server` (before it starts)."""
        for service, handlers in self._by_service.items():
            server.add_registered_method_handlers(service, handlers)

    def _forwarder(self, method: ForwardedMethod, upstream: aio.UnaryUnaryMultiCallable) -> Any:
        queue, observer, clock, name = self._queue, self._observer, self._clock, method.name
        recorded = method.recorded

        async def forward(request: bytes, context: aio.ServicerContext) -> bytes:
            received_at = clock()
            started = time.perf_counter()
            timeout = context.time_remaining()
            call = upstream(
                request,
                timeout=timeout,
                metadata=forwardable_metadata(context.invocation_metadata()),
            )
            try:
                response: bytes = await call
            except asyncio.CancelledError:
                # The server cancels the handler when the client hangs up or its deadline
                # passes (the upstream call is cancelled with it).
                expired = _client_expired(started, timeout)
                code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
                observer.abandoned(name, code, time.perf_counter() - started)
                raise
            except aio.AioRpcError as error:
                code = error.code()
                seconds = time.perf_counter() - started
                if code is grpc.StatusCode.DEADLINE_EXCEEDED and _client_expired(started, timeout):
                    observer.abandoned(name, code, seconds)
                else:
                    observer.forwarded(name, code, seconds)
                initial = error.initial_metadata()
                if initial:
                    await context.send_initial_metadata(initial)
                await context.abort(code, error.details() or "", error.trailing_metadata() or ())
                raise  # abort raises; this line is never reached
            # Both are already known once the response arrived; awaiting them does not wait.
            initial = await call.initial_metadata()
            if initial:
                await context.send_initial_metadata(initial)
            trailing = await call.trailing_metadata()
            if trailing:
                context.set_trailing_metadata(trailing)
            observer.forwarded(name, grpc.StatusCode.OK, time.perf_counter() - started)
            if recorded and not queue.offer(PendingCall(name, request, received_at)):
                observer.dropped(name)
            return response

        return forward


def _client_expired(started: float, timeout: float | None) -> bool:
    """True when the client's own deadline (`timeout` seconds from `started`) has passed."""
    if timeout is None:
        return False
    return time.perf_counter() >= started + timeout - _DEADLINE_SLACK_SECONDS

