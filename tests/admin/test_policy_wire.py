"""The policy's wire mapping is derived from `ModelPolicy`: both messages carry exactly its
fields, and every field goes to the wire and back unchanged."""

from __future__ import annotations

import dataclasses

from sidecar.admin.policy_wire import overrides_from_proto, overrides_to_proto, policy_to_proto
from sidecar.config import ModelPolicy
from sidecar.config.overrides import PolicyOverrides
from tftrt.sidecar.admin.v1 import admin_pb2 as pb

# A value for every field, none of them the default.
CHANGED = ModelPolicy(
    backend="xla", precision="INT8", accuracy="top1", min_top1_agreement=0.95,
    max_scaled_error=0.1, max_engines=6, minimum_segment_size=5,
    build_at_runtime=True, keep_versions=3, default_batch_sizes=(2, 16),
    rebuild_below_coverage=0.5, rebuild_after_seconds=30.0, rebuild_min_requests=7,
    serve_original_first=False,
)


def test_both_messages_carry_exactly_the_policy_fields() -> None:
    fields = [field.name for field in dataclasses.fields(ModelPolicy)]
    assert all(getattr(CHANGED, name) != getattr(ModelPolicy(), name) for name in fields)
    for message in (pb.PolicyOverrides, pb.EffectivePolicy):
        assert sorted(message.DESCRIPTOR.fields_by_name) == sorted(fields), message


def test_every_field_goes_to_the_wire_and_back() -> None:
    effective = policy_to_proto(CHANGED)
    assert {name: getattr(effective, name) for name in ("backend", "max_engines")} == {
        "backend": "xla", "max_engines": 6}
    assert list(effective.default_batch_sizes) == [2, 16]

    raw = {field.name: getattr(CHANGED, field.name) for field in dataclasses.fields(ModelPolicy)}
    overrides = PolicyOverrides.parse(raw, "test")
    assert overrides.apply(ModelPolicy()) == CHANGED
    back = overrides_from_proto(pb.PolicyOverrides.FromString(
        overrides_to_proto(overrides).SerializeToString()), "the request")
    assert back == overrides
    assert back.default_batch_sizes == (2, 16) and back.rebuild_min_requests == 7


def test_an_unset_scaled_error_bound_stays_unset_on_the_wire() -> None:
    # None: the tolerance of the precision a version computes in, not a bound of 0.
    effective = policy_to_proto(ModelPolicy())
    assert not effective.HasField("max_scaled_error") and effective.accuracy == "auto"
    assert effective.min_top1_agreement == 0.99
    assert policy_to_proto(CHANGED).max_scaled_error == 0.1


def test_unset_fields_stay_unset_on_the_wire() -> None:
    only = PolicyOverrides.parse({"keep_versions": "4"}, "test")
    message = overrides_to_proto(only)
    assert message.HasField("keep_versions") and not message.HasField("backend")
    assert not message.default_batch_sizes
    back = overrides_from_proto(message, "the request")
    assert back.as_dict() == {"keep_versions": 4} and back.backend is None
    assert PolicyOverrides().empty and overrides_from_proto(pb.PolicyOverrides(), "x").empty
