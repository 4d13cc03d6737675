"""The one error type of the TF Serving stand-in (test-only): a gRPC status to return."""

from __future__ import annotations

import grpc


class StandinError(Exception):
    """A call failed with `code` and `message`, as TF Serving would report it."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        """The gRPC status code the client receives."""
        self.message = message
        """The status details the client receives."""


def not_found(message: str) -> StandinError:
    """A NOT_FOUND error (unknown model or version)."""
    return StandinError(grpc.StatusCode.NOT_FOUND, message)


def invalid_argument(message: str) -> StandinError:
    """An INVALID_ARGUMENT error (bad request)."""
    return StandinError(grpc.StatusCode.INVALID_ARGUMENT, message)


def failed_precondition(message: str) -> StandinError:
    """A FAILED_PRECONDITION error (e.g. an unknown signature, as TF Serving reports it)."""
    return StandinError(grpc.StatusCode.FAILED_PRECONDITION, message)


def from_tf_error_code(error_code: int, message: str) -> StandinError:
    """Map a TensorFlow error code (same numbering as gRPC's) to a stand-in error."""
    for code in grpc.StatusCode:
        if code.value[0] == error_code:
            return StandinError(code, message)
    return StandinError(grpc.StatusCode.UNKNOWN, message)
