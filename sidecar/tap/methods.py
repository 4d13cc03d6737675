"""The tap's allow-list: the gRPC methods clients may call through it, and which of them
carry shapes worth recording.

This is the one definition of what clients may do on the public port. The tap serves
exactly these paths and refuses every other one with PERMISSION_DENIED (see
`sidecar.tap.refusal`); a proxy configured in front of or instead of the tap (an Envoy
route table) is generated from `FORWARDED_METHODS[*].path` so it admits the same calls.
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
`GetModelStatus`. Nothing else reaches TF Serving through the tap."""

PROFILER_SERVICE = "tensorflow.ProfilerService"
HEALTH_SERVICE = "grpc.health.v1.Health"

KNOWN_REFUSED_PATHS: dict[str, str] = {
    f"/{MODEL_SERVICE}/HandleReloadConfigRequest": "HandleReloadConfigRequest",
    f"/{SESSION_SERVICE}/SessionRun": "SessionRun",
    f"/{PROFILER_SERVICE}/Profile": "Profile",
    f"/{PROFILER_SERVICE}/Monitor": "Monitor",
    f"/{PROFILER_SERVICE}/Terminate": "Terminate",
    f"/{HEALTH_SERVICE}/Check": "HealthCheck",
    f"/{HEALTH_SERVICE}/Watch": "HealthWatch",
}
"""Methods TF Serving's gRPC port has but clients may not call through the tap (its
health service too: the tap is not TF Serving, and kubelet probes TF Serving directly),
by path, with the short name their refusals are counted under; refusals of any other
path count as `other`, so a client sending made-up paths cannot grow the label set."""

OTHER_METHOD = "other"
"""The `method` label of a refused call whose path is no TF Serving method."""


def refused_method_label(path: str) -> str:
    """The label a refused call of `path` is counted under (a short name, or `other`)."""
    return KNOWN_REFUSED_PATHS.get(path, OTHER_METHOD)
