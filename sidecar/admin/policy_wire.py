"""Policy overrides to and from their protobuf message, for the admin server and its client.

Free of gRPC and of the server's imports, so the command-line client stays light.
"""

from __future__ import annotations

from sidecar.config.overrides import PolicyOverrides
from tftrt.sidecar.admin.v1 import admin_pb2 as pb

_OVERRIDE_SCALARS = (
    "backend", "precision", "max_engines", "minimum_segment_size", "build_at_runtime",
    "keep_versions", "rebuild_below_coverage", "rebuild_after_seconds", "rebuild_min_requests",
)


def overrides_from_proto(message: pb.PolicyOverrides, source: str) -> PolicyOverrides:
    """Check the fields a request sets, as the config file's parsers would; ConfigError if bad."""
    raw: dict[str, object] = {
        name: getattr(message, name) for name in _OVERRIDE_SCALARS if message.HasField(name)
    }
    if message.default_batch_sizes:
        raw["default_batch_sizes"] = list(message.default_batch_sizes)
    return PolicyOverrides.parse(raw, source)


def overrides_to_proto(overrides: PolicyOverrides) -> pb.PolicyOverrides:
    """The overrides that are set."""
    message = pb.PolicyOverrides()
    for name, value in overrides.as_dict().items():
        if name == "default_batch_sizes":
            message.default_batch_sizes.extend(value)
        else:
            setattr(message, name, value)
    return message
