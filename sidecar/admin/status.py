"""The one table from error types to gRPC status codes, and the lookup every RPC goes through.

The most specific class wins: the lookup walks the error's MRO, so a subclass of
``UserError`` that is not listed gets ``UserError``'s code.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import grpc

from sidecar.admin.errors import (
    AlreadyExistsError,
    ConversionFailedError,
    InvalidRequestError,
    NotFoundError,
    NotReadyError,
    OperationCancelledError,
    PreconditionError,
    UnauthenticatedError,
)
from sidecar.base.errors import (
    ConcurrentChangeError,
    ConfigError,
    InternalError,
    OnlyServableVersionError,
    SidecarError,
    StorageError,
    UserError,
    VersionAlreadyPublishedError,
)
from sidecar.shapes import ShapeStoreCorruptError

STATUS_BY_ERROR: Final[Mapping[type[BaseException], grpc.StatusCode]] = MappingProxyType(
    {
        InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
        ConfigError: grpc.StatusCode.INVALID_ARGUMENT,
        NotFoundError: grpc.StatusCode.NOT_FOUND,
        AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
        VersionAlreadyPublishedError: grpc.StatusCode.ALREADY_EXISTS,
        PreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
        OnlyServableVersionError: grpc.StatusCode.FAILED_PRECONDITION,
        UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
        NotReadyError: grpc.StatusCode.UNAVAILABLE,
        ConversionFailedError: grpc.StatusCode.ABORTED,
        ConcurrentChangeError: grpc.StatusCode.ABORTED,
        OperationCancelledError: grpc.StatusCode.CANCELLED,
        UserError: grpc.StatusCode.FAILED_PRECONDITION,
        StorageError: grpc.StatusCode.UNAVAILABLE,
        ShapeStoreCorruptError: grpc.StatusCode.DATA_LOSS,
        InternalError: grpc.StatusCode.INTERNAL,
        SidecarError: grpc.StatusCode.INTERNAL,
    }
)
"""Error type -> status code. Anything not a SidecarError is a bug: INTERNAL."""


def status_for(error: BaseException) -> grpc.StatusCode:
    """The status code for ``error``: its nearest class in :data:`STATUS_BY_ERROR`."""
    for cls in type(error).__mro__:
        code = STATUS_BY_ERROR.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def message_for(error: BaseException) -> str:
    """The status details: the error's own message, or the type and text of an unexpected one."""
    if isinstance(error, SidecarError):
        return str(error)
    return f"internal error: {type(error).__name__}: {error}"
