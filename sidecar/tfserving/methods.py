"""The allow-list: the gRPC methods clients may call through the proxy, and which of them
carry shapes worth recording.

This is the one definition of what clients may do on the public port. Envoy's route
table is generated from `FORWARDED_METHODS[*].path` (`sidecar.envoy.bootstrap`), and Envoy
refuses every other path with PERMISSION_DENIED; the recorder serves the recorded ones.
Configuration (`ModelService/HandleReloadConfigRequest`) belongs to the sidecar alone:
it writes TF Serving's model config file itself and never calls TF Serving for it.
"""

from __future__ import annotations

from dataclasses import dataclass

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
SESSION_SERVICE = "tensorflow.serving.SessionService"


@dataclass(frozen=True)
class ForwardedMethod:
    """One forwarded method: its full gRPC path and short name; `recorded` when the tap
    records its request shapes."""

    path: str
    name: str
    recorded: bool

    @property
    def service(self) -> str:
        """The full service name (`tensorflow.serving.PredictionService`)."""
        return self.path[1:].rpartition("/")[0]


def _method(service: str, name: str, recorded: bool) -> ForwardedMethod:
    return ForwardedMethod(f"/{service}/{name}", name, recorded)


FORWARDED_METHODS: tuple[ForwardedMethod, ...] = (
    _method(PREDICTION_SERVICE, "Predict", True),
    _method(PREDICTION_SERVICE, "Classify", True),
    _method(PREDICTION_SERVICE, "Regress", True),
    _method(PREDICTION_SERVICE, "MultiInference", True),
    _method(PREDICTION_SERVICE, "GetModelMetadata", False),
    _method(MODEL_SERVICE, "GetModelStatus", False),
)
"""The allow-list: all of TF Serving's PredictionService, and ModelService's read-only
`GetModelStatus`. Nothing else reaches TF Serving through the proxy."""

PROFILER_SERVICE = "tensorflow.ProfilerService"
HEALTH_SERVICE = "grpc.health.v1.Health"
