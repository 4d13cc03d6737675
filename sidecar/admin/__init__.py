"""The admin gRPC API (``tftrt.sidecar.admin.v1.SidecarAdmin``) with health checking and
reflection, safe by default: localhost, optional TLS / mutual TLS and bearer token.

Public API: :func:`start_admin_server` / :class:`AdminServer` with :class:`AdminSettings`;
the :class:`AdminBackend` protocol and the real :class:`SidecarAdminBackend` built from
:class:`BackendDependencies`; :class:`ConversionRequest` and :data:`ConversionSubmitter`
(how the service runs conversions asked for here); :class:`ModelControls` (persisted
pauses and policy overrides the service consults); :class:`PublishedModels`; the errors
and the error-to-status table :data:`STATUS_BY_ERROR`.
"""

from __future__ import annotations

from sidecar.admin.backend import (
    AdminBackend,
    ConversionRequest,
    ConversionSubmitter,
    RollbackObserver,
)
from sidecar.admin.controls import CONTROLS_FILE_NAME, ModelControl, ModelControls
from sidecar.admin.errors import (
    AdminSettingsError,
    AlreadyExistsError,
    ConversionFailedError,
    InvalidRequestError,
    NotFoundError,
    NotReadyError,
    OperationCancelledError,
    PreconditionError,
    UnauthenticatedError,
)
from sidecar.admin.policy import POLICY_KEYS, PolicyOverrides
from sidecar.admin.published import EngineInfo, PublishedModels, PublishedVersion
from sidecar.admin.server import AdminServer, start_admin_server
from sidecar.admin.servicer import SERVICE_NAME
from sidecar.admin.settings import AdminSettings
from sidecar.admin.sidecar_backend import BackendDependencies, SidecarAdminBackend
from sidecar.admin.status import STATUS_BY_ERROR, status_for

__all__ = [
    "CONTROLS_FILE_NAME",
    "POLICY_KEYS",
    "SERVICE_NAME",
    "STATUS_BY_ERROR",
    "AdminBackend",
    "AdminServer",
    "AdminSettings",
    "AdminSettingsError",
    "AlreadyExistsError",
    "BackendDependencies",
    "ConversionFailedError",
    "ConversionRequest",
    "ConversionSubmitter",
    "EngineInfo",
    "InvalidRequestError",
    "ModelControl",
    "ModelControls",
    "NotFoundError",
    "NotReadyError",
    "OperationCancelledError",
    "PolicyOverrides",
    "PreconditionError",
    "PublishedModels",
    "PublishedVersion",
    "RollbackObserver",
    "SidecarAdminBackend",
    "UnauthenticatedError",
    "start_admin_server",
    "status_for",
]
