"""The SidecarAdmin gRPC servicer: checks request fields, asks the backend, answers in protobuf.

It raises errors and never sets a status itself: the status interceptor maps them.
"""

from __future__ import annotations

from typing import Final

import grpc

from sidecar.admin import validation, wire
from sidecar.admin.backend import AdminBackend
from sidecar.admin.errors import InvalidRequestError
from sidecar.admin.policy_wire import overrides_from_proto
from tftrt.sidecar.admin.v1 import admin_pb2 as pb
from tftrt.sidecar.admin.v1 import admin_pb2_grpc as pb_grpc

SERVICE_NAME: Final = "tftrt.sidecar.admin.v1.SidecarAdmin"
"""The admin service's full name (health checks and reflection use it)."""

_REQUEST: Final = "the request"
_MAX_PAGE: Final = 1000
_MAX_SHAPE_SETS: Final = 1000
_MAX_REASON: Final = 1000


class SidecarAdminServicer(pb_grpc.SidecarAdminServicer):
    """Serves SidecarAdmin from an :class:`~sidecar.admin.backend.AdminBackend`."""

    def __init__(self, backend: AdminBackend) -> None:
        self._backend = backend

    def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.ServicerContext
    ) -> pb.ListModelsResponse:
        """Every known model."""
        return pb.ListModelsResponse(
            models=[wire.model_summary_to_proto(m) for m in self._backend.list_models()],
            refused=[wire.refusal_to_proto(r) for r in self._backend.refused_directories()],
        )

    def GetModel(self, request: pb.GetModelRequest, context: grpc.ServicerContext) -> pb.Model:
        """One model."""
        return wire.model_to_proto(self._backend.get_model(validation.model_name(request.name,
                                                                                 "name")))

    def StartConversion(
        self, request: pb.StartConversionRequest, context: grpc.ServicerContext
    ) -> pb.Operation:
        """Queue a conversion."""
        model = validation.model_name(request.model)
        version = validation.incoming_version(request.version)
        overrides = overrides_from_proto(request.overrides, _REQUEST)
        view = self._backend.start_conversion(model, version, overrides, request.rebuild)
        return wire.operation_to_proto(view)

    def GetOperation(
        self, request: pb.GetOperationRequest, context: grpc.ServicerContext
    ) -> pb.Operation:
        """One operation."""
        name = validation.operation_name(request.name)
        return wire.operation_to_proto(self._backend.get_operation(name))

    def ListOperations(
        self, request: pb.ListOperationsRequest, context: grpc.ServicerContext
    ) -> pb.ListOperationsResponse:
        """Operations, newest first, a page at a time."""
        model = validation.model_name(request.model) if request.model else None
        size = validation.bounded_count(request.page_size, "page_size", default=100,
                                        maximum=_MAX_PAGE)
        token = request.page_token
        if token and not token.isdigit():
            raise InvalidRequestError("page_token", token, "is not a page token",
                                      "pass the next_page_token of the previous answer")
        start = int(token) if token else 0
        found = self._backend.list_operations(model)
        page = found[start:start + size]
        next_token = str(start + size) if start + size < len(found) else ""
        return pb.ListOperationsResponse(
            operations=[wire.operation_to_proto(view) for view in page],
            next_page_token=next_token,
        )

    def CancelOperation(
        self, request: pb.CancelOperationRequest, context: grpc.ServicerContext
    ) -> pb.Operation:
        """Cancel a queued operation."""
        name = validation.operation_name(request.name)
        return wire.operation_to_proto(self._backend.cancel_operation(name))

    def GetShapeStatistics(
        self, request: pb.GetShapeStatisticsRequest, context: grpc.ServicerContext
    ) -> pb.ShapeStatistics:
        """The model's top shape sets."""
        model = validation.model_name(request.model)
        limit = validation.bounded_count(request.limit, "limit", default=10,
                                         maximum=_MAX_SHAPE_SETS)
        return wire.shape_statistics_to_proto(self._backend.shape_statistics(model, limit))

    def SetModelPolicy(
        self, request: pb.SetModelPolicyRequest, context: grpc.ServicerContext
    ) -> pb.ModelPolicy:
        """Persist policy overrides."""
        model = validation.model_name(request.model)
        overrides = overrides_from_proto(request.overrides, _REQUEST)
        return wire.policy_view_to_proto(self._backend.set_policy(model, overrides, request.clear))

    def PauseModel(
        self, request: pb.PauseModelRequest, context: grpc.ServicerContext
    ) -> pb.ModelControl:
        """Pause a model."""
        model = validation.model_name(request.model)
        return wire.control_to_proto(self._backend.pause(model, _reason(request.reason)))

    def ResumeModel(
        self, request: pb.ResumeModelRequest, context: grpc.ServicerContext
    ) -> pb.ModelControl:
        """Resume a model."""
        return wire.control_to_proto(self._backend.resume(validation.model_name(request.model)))

    def RollBack(
        self, request: pb.RollBackRequest, context: grpc.ServicerContext
    ) -> pb.RollBackResponse:
        """Roll back the newest published version."""
        model = validation.model_name(request.model)
        return wire.rollback_to_proto(self._backend.roll_back(model, _reason(request.reason)))


def _reason(reason: str) -> str:
    """An operator's reason (PauseModel, RollBack), checked for length."""
    if len(reason) > _MAX_REASON:
        raise InvalidRequestError("reason", f"<{len(reason)} characters>", "is too long",
                                  f"keep it under {_MAX_REASON} characters")
    return reason
