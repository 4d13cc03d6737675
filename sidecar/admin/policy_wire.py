"""Policies and their overrides to and from their protobuf messages, for the admin server
and its client.

The mapping is by field name: each field of `ModelPolicy` is the field of the same name in
``PolicyOverrides`` and ``EffectivePolicy`` (a test checks the messages have exactly these
fields). Free of gRPC and of the server's imports, so the command-line client stays light.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import Message

from sidecar.config import ModelPolicy
from sidecar.config.overrides import POLICY_KEYS, PolicyOverrides
from tftrt.sidecar.admin.v1 import admin_pb2 as pb


def overrides_from_proto(message: pb.PolicyOverrides, source: str) -> PolicyOverrides:
    """Check the fields a request sets, as the config file's parsers would; ConfigError if bad."""
    raw: dict[str, object] = {}
    for name in POLICY_KEYS:
        if _is_repeated(message, name):
            if getattr(message, name):  # an empty list is not an override
                raw[name] = list(getattr(message, name))
        elif message.HasField(name):
            raw[name] = getattr(message, name)
    return PolicyOverrides.parse(raw, source)


def overrides_to_proto(overrides: PolicyOverrides) -> pb.PolicyOverrides:
    """The overrides that are set."""
    return _filled(pb.PolicyOverrides(), overrides.as_dict())


def policy_to_proto(policy: ModelPolicy) -> pb.EffectivePolicy:
    """A whole policy."""
    return _filled(pb.EffectivePolicy(), {name: getattr(policy, name) for name in POLICY_KEYS})


_M = TypeVar("_M", bound=Message)


def _filled(message: _M, fields: dict[str, object]) -> _M:
    for name, value in fields.items():
        if value is None:  # an optional field left to its default (max_scaled_error)
            continue
        if _is_repeated(message, name):
            getattr(message, name).extend(value)
        else:
            setattr(message, name, value)
    return message


def _is_repeated(message: Message, name: str) -> bool:
    return bool(message.DESCRIPTOR.fields_by_name[name].is_repeated)
