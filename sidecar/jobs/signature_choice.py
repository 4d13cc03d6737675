"""Which signature a job converts: the configured one, or, when the model has none
by that name (e.g. no ``serving_default``), the one real traffic calls most."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sidecar.jobs.replay import ShapeSource


@dataclass(frozen=True)
class SignatureChoice:
    """The signature to convert (None: none, publish the original) and why."""

    key: str | None
    reason: str


def choose_signature(model: str, configured: str, available: Sequence[str],
                     shape_source: ShapeSource | None) -> SignatureChoice:
    """`configured` if the model has it; else the signature with the most recorded
    requests (the tap records each request's signature name); else None."""
    if configured in available:
        return SignatureChoice(configured, "configured")
    missing = f"the model has no signature {configured!r} (it has {sorted(available)})"
    if shape_source is None:
        return SignatureChoice(None, f"{missing} and no traffic is recorded to pick one by")
    calls = {key: shape_source.top_shape_sets(model, key, 1).total_requests
             for key in sorted(available)}
    busiest = max(calls, key=lambda key: (calls[key], key))
    if calls[busiest] == 0:
        return SignatureChoice(None, f"{missing} and the recorded traffic called none of them")
    return SignatureChoice(busiest, f"{missing}; {busiest!r} carried the most recorded "
                           f"traffic ({calls[busiest]} of {sum(calls.values())} requests)")
