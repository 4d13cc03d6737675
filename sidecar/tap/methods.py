"""The gRPC methods the tap forwards, and which of them carry shapes worth recording."""

from __future__ import annotations

from dataclasses import dataclass

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"


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
    _method(MODEL_SERVICE, "HandleReloadConfigRequest", False),
)
"""Every method of TF Serving's PredictionService and ModelService."""
