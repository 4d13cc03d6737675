"""gRPC servicers of the TF Serving stand-in (test-only): PredictionService and
ModelService on top of a `ModelRegistry`.

Test hooks TF Serving does not have: every call is logged (`CallLog`), metadata keys
starting with `x-standin-echo` come back as trailing metadata, and an optional delay
makes the server slow so deadline handling can be tested.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from tests.support.standin_config import from_model_server_config
from tests.support.standin_errors import StandinError, invalid_argument, not_found
from tests.support.standin_registry import ModelRegistry

ECHO_PREFIX = "x-standin-echo"
_Response = TypeVar("_Response")


@dataclass(frozen=True)
class ReceivedCall:
    """A call the stand-in received: method name, metadata, and the deadline left then."""

    method: str
    metadata: tuple[tuple[str, str | bytes], ...]
    time_remaining: float | None


class CallLog:
    """The last calls received, newest last (bounded)."""

    def __init__(self, keep: int = 256) -> None:
        self._calls: collections.deque[ReceivedCall] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()

    def add(self, call: ReceivedCall) -> None:
        """Remember `call`."""
        with self._lock:
            self._calls.append(call)

    def snapshot(self) -> list[ReceivedCall]:
        """The remembered calls, oldest first."""
        with self._lock:
            return list(self._calls)


class _Calls:
    """Shared per-call behaviour: log, delay, echo, map errors to statuses."""

    def __init__(self, registry: ModelRegistry, log: CallLog, delay_seconds: float) -> None:
        self.registry = registry
        self._log = log
        self._delay = delay_seconds

    def run(
        self, method: str, context: grpc.ServicerContext, body: Callable[[], _Response]
    ) -> _Response:
        metadata = tuple((item.key, item.value) for item in context.invocation_metadata())
        self._log.add(ReceivedCall(method, metadata, context.time_remaining()))
        echoed = tuple((key, value) for key, value in metadata if key.startswith(ECHO_PREFIX))
        if echoed:
            context.set_trailing_metadata(echoed)
        # On purpose: a slow server (the delay the test asked for), cut short once the
        # client gave up.
        deadline = time.monotonic() + self._delay
        while time.monotonic() < deadline and context.is_active():
            time.sleep(0.01)
        try:
            return body()
        except StandinError as error:
            context.abort(error.code, error.message)
            raise  # abort raises


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """PredictionService over the registry's servables."""

    def __init__(self, calls: _Calls) -> None:
        self._calls = calls

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Run Predict on the version the ModelSpec names."""
        registry = self._calls.registry
        return self._calls.run(
            "Predict",
            context,
            lambda: registry.servable_for(request.model_spec).predict(request),
        )

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Run Classify on the version the ModelSpec names."""
        registry = self._calls.registry
        return self._calls.run(
            "Classify",
            context,
            lambda: registry.servable_for(request.model_spec).classify(request),
        )

    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Run Regress on the version the ModelSpec names."""
        registry = self._calls.registry
        return self._calls.run(
            "Regress",
            context,
            lambda: registry.servable_for(request.model_spec).regress(request),
        )

    def MultiInference(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Run every task of a MultiInference request on one model version."""

        def body() -> Any:
            if not request.tasks:
                raise invalid_argument("Inference task list is empty")
            names = {task.model_spec.name for task in request.tasks}
            if len(names) != 1:
                raise invalid_argument(
                    "All ModelSpecs in a MultiInferenceRequest must access the same model name."
                )
            servable = self._calls.registry.servable_for(request.tasks[0].model_spec)
            return servable.multi_inference(request)

        return self._calls.run("MultiInference", context, body)

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Return the signature_def metadata of the version the ModelSpec names."""
        registry = self._calls.registry
        return self._calls.run(
            "GetModelMetadata", context, lambda: model_metadata(registry, request)
        )


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """ModelService: version states, and config reloads."""

    def __init__(self, calls: _Calls) -> None:
        self._calls = calls

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Report the state of every version of a model (or of the one requested)."""
        registry = self._calls.registry
        return self._calls.run(
            "GetModelStatus", context, lambda: model_status(registry, request.model_spec)
        )

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Serve the models of the given config from now on (until the config file changes)."""

        def body() -> Any:
            self._calls.registry.replace_config(from_model_server_config(request.config))
            return model_management_pb2.ReloadConfigResponse()

        return self._calls.run("HandleReloadConfigRequest", context, body)


def model_metadata(registry: ModelRegistry, request: Any) -> Any:
    """The GetModelMetadataResponse (signature_def) for `request`; StandinError if refused.
    Shared by the gRPC servicer and the REST stand-in, as TF Serving shares its impl."""
    if not request.metadata_field:
        raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for field_name in request.metadata_field:
        if field_name != "signature_def":
            raise invalid_argument(f"Metadata field {field_name} is not supported")
    servable = registry.servable_for(request.model_spec)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    signatures = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signatures.items():
        signatures.signature_def[key].CopyFrom(signature)
    response.metadata["signature_def"].Pack(signatures)
    return response


def model_status(registry: ModelRegistry, spec: Any) -> Any:
    """The GetModelStatusResponse for the ModelSpec `spec`: every version of the model, or
    the one it names; StandinError (NOT_FOUND) when there is none. Shared like
    `model_metadata`."""
    entries = registry.version_entries(spec.name)
    if not entries:
        raise not_found(f"Could not find any versions of model {spec.name}")
    if spec.WhichOneof("version_choice") == "version":
        entries = [e for e in entries if e.version == spec.version.value]
        if not entries:
            raise not_found(f"Could not find version {spec.version.value} of model {spec.name}")
    response = get_model_status_pb2.GetModelStatusResponse()
    for entry in entries:
        status = response.model_version_status.add()
        status.version = entry.version
        status.state = int(entry.state)
        status.status.SetInParent()
        if entry.error is not None:
            status.status.error_code = entry.error.code.value[0]
            status.status.error_message = entry.error.message
    return response


def add_servicers(
    server: grpc.Server, registry: ModelRegistry, log: CallLog, delay_seconds: float
) -> None:
    """Register both services of the stand-in on `server`."""
    calls = _Calls(registry, log, delay_seconds)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(calls), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(calls), server)
