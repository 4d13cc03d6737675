"""Server interceptors: status mapping (the one place errors become gRPC statuses),
bearer-token authentication and the not-ready gate.

Order matters: :class:`StatusInterceptor` must be first (outermost) so the errors
the other two raise go through the table too.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Collection, Iterator
from typing import Any

import grpc

from sidecar.admin.errors import NotReadyError, UnauthenticatedError
from sidecar.admin.status import message_for, status_for
from sidecar.base.errors import SidecarError

_LOG = logging.getLogger("sidecar.admin")

Continuation = Callable[[grpc.HandlerCallDetails], Any]


class StatusInterceptor(grpc.ServerInterceptor):
    """Turns every exception a handler raises into a status via :mod:`sidecar.admin.status`."""

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        """Wrap the handler's behaviour."""
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return _rebuild(handler, lambda behavior, streams: _guarded(behavior, streams))


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Rejects calls without ``authorization: Bearer <token>`` (compared in constant time).

    Services in ``exempt_services`` (health checks: kubelet probes carry no token)
    are let through.
    """

    def __init__(self, token: str, exempt_services: Collection[str]) -> None:
        self._expected = f"Bearer {token}".encode()
        self._exempt = tuple(f"/{name}/" for name in exempt_services)

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        """Let the call through, or answer it with UNAUTHENTICATED."""
        method = handler_call_details.method or ""
        if method.startswith(self._exempt):
            return continuation(handler_call_details)
        presented = b""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                presented = value.encode() if isinstance(value, str) else bytes(value)
        if hmac.compare_digest(presented, self._expected):
            return continuation(handler_call_details)
        problem = "has no bearer token" if not presented else "has the wrong bearer token"
        error = UnauthenticatedError(
            f"the call {problem}", where=method,
            fix="send the metadata 'authorization: Bearer <token>' (the CLI's --token)",
        )
        return _rejecting(continuation(handler_call_details), error)


class ReadinessInterceptor(grpc.ServerInterceptor):
    """Answers calls of ``services`` with UNAVAILABLE while ``is_ready()`` is False."""

    def __init__(self, services: Collection[str], is_ready: Callable[[], bool]) -> None:
        self._gated = tuple(f"/{name}/" for name in services)
        self._is_ready = is_ready

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        """Let the call through once ready."""
        handler = continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or not method.startswith(self._gated) or self._is_ready():
            return handler
        return _rejecting(handler, NotReadyError(
            "the sidecar is loading its state or shutting down", where=method,
            fix="retry in a few seconds; the health service says when it serves",
        ))


def _rejecting(handler: Any, error: Exception) -> Any:
    if handler is None:
        return None

    def reject(*_: object) -> Any:
        raise error

    return _rebuild(handler, lambda behavior, streams: reject)


def _rebuild(handler: Any, wrap: Callable[[Any, bool], Any]) -> Any:
    serialization = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False),
                                                   **serialization)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, True),
                                                    **serialization)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, False),
                                                    **serialization)
    return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, True),
                                                 **serialization)


def _guarded(behavior: Callable[..., Any], streams: bool) -> Callable[..., Any]:
    if streams:
        def guarded_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from behavior(request, context)
            except Exception as exc:
                _abort(context, exc)

        return guarded_stream

    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behavior(request, context)
        except Exception as exc:
            _abort(context, exc)

    return guarded


def _abort(context: grpc.ServicerContext, exc: Exception) -> None:
    if not isinstance(exc, SidecarError):
        code = context.code()
        if code is not None and code is not grpc.StatusCode.OK:
            raise exc  # the handler already aborted with its own status
        _LOG.error("unexpected error in an admin call", exc_info=exc)
    context.abort(status_for(exc), message_for(exc))
