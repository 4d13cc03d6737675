"""The admin API's errors: each a :class:`~sidecar.base.errors.SidecarError` the status table maps.

They extend the sidecar's one hierarchy, so a handler raises them like any other
sidecar error and :mod:`sidecar.admin.status` turns every one into a gRPC status.
"""

from __future__ import annotations

from typing import ClassVar

from sidecar.base.errors import ConfigError, SidecarError, UserError, echo


class AdminSettingsError(ConfigError):
    """An admin setting (listen address, TLS file, token) is invalid."""


class InvalidRequestError(UserError):
    """A request field is missing or malformed; names the field and the accepted form."""

    def __init__(self, field: str, value: object, problem: str, fix: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field} = {echo(value)} {problem}", where="the request", fix=fix)


class NotFoundError(UserError):
    """The model, version or operation a request names does not exist."""


class AlreadyExistsError(UserError):
    """The request would start something that is already under way."""


class PreconditionError(UserError):
    """The request is valid, but the model or version is not in a state that allows it."""


class UnauthenticatedError(UserError):
    """The call carries no bearer token, or the wrong one."""


class NotReadyError(SidecarError):
    """The sidecar is still loading its state (or shutting down); retry shortly (the status
    table answers UNAVAILABLE, which gRPC clients retry)."""

    retryable: ClassVar[bool] = True


class ConversionFailedError(SidecarError):
    """A conversion an operation ran ended FAILED; the message is the job's reason."""


class OperationCancelledError(SidecarError):
    """An operation was cancelled before it ran."""

