"""Refusing what is not on the allow-list: every gRPC path the tap does not forward is
answered PERMISSION_DENIED at the tap, without reaching TF Serving, and counted.

PERMISSION_DENIED rather than UNIMPLEMENTED: the method may well exist on TF Serving
(`HandleReloadConfigRequest` does); it is this endpoint's policy that refuses it, and the
client (or whoever reads the metrics) should see a decision, not a missing feature.
UNIMPLEMENTED would also invite clients that probe for features to fall back silently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio

from sidecar.errors import echo
from sidecar.tap.methods import FORWARDED_METHODS, refused_method_label
from sidecar.tap.stats import TapObserver

_ALLOWED = ", ".join(method.path[1:] for method in FORWARDED_METHODS)


def refusal_details(path: str) -> str:
    """The status details a refused call of `path` gets: what was refused, what is allowed,
    and where configuration goes instead."""
    return (f"{echo(path)} is not served on this port: it forwards only {_ALLOWED}. "
            "The served models are managed by tftrt-sidecar, not by clients.")


class RefusingHandler(grpc.GenericRpcHandler):
    """Answers any method it is asked about (the server asks only for paths without a
    registered handler) with PERMISSION_DENIED, and tells `observer.refused`.

    A stream-stream handler, so a refusal never waits for a request message, whatever kind
    of call the client made."""

    def __init__(self, observer: TapObserver) -> None:
        self._observer = observer

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        """The refusing handler for this call's path."""
        path = handler_call_details.method
        observer = self._observer

        async def refuse(requests: AsyncIterator[bytes], context: aio.ServicerContext) -> Any:
            observer.refused(refused_method_label(path))
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal_details(path))

        return grpc.stream_stream_rpc_method_handler(refuse)
