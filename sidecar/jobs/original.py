"""What a job learns from the original before converting it: the signature to convert,
the inputs to replay, and the original's outputs on them (what the converted model must
match)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from converter import InputFnError
from sidecar.config import ModelPolicy
from sidecar.config.job import JobSettings
from sidecar.jobs.dependencies import JobDependencies
from sidecar.jobs.errors import ReplayError, VerificationError
from sidecar.jobs.replay import ReplayInputs, ReplayOrigin, ShapeSource, choose_replay_inputs
from sidecar.jobs.session_model import Arrays, SessionModel
from sidecar.jobs.verify import AccuracyCheck, Comparison, compare_outputs

_LOG = logging.getLogger("sidecar.jobs")


@dataclass(frozen=True)
class Prepared:
    """What the CONVERTING stage learned from the original."""

    signature_key: str
    """The signature converted: the configured one, or the busiest (choose_signature)."""

    replay: ReplayInputs | None
    """The inputs built, verified and warmed up for; None: publish the original."""

    no_replay_reason: str = ""
    """Why there is nothing to replay (so the original is published)."""

    checked: tuple[Arrays, ...] = ()
    """The inputs the accuracy check runs on: the held-out recorded requests (if any
    were sampled), then up to ``JobSettings.max_verify_inputs`` of the replay inputs."""

    checked_expected: tuple[Arrays, ...] = ()
    """The original's outputs on ``checked``."""

    checked_on: str = ""
    """What ``checked`` is: REPLAY_INPUTS, or HELD_OUT_SAMPLES and REPLAY_INPUTS."""


HELD_OUT_SAMPLES = "held-out samples"
REPLAY_INPUTS = "replay inputs"
"""What an accuracy check ran on (``Prepared.checked_on``)."""


def prepare_original(
    deps: JobDependencies, model: str, version: int, source: Path, policy: ModelPolicy
) -> Prepared:
    """Open the original at ``source`` (``version`` of ``model``) as TF Serving does,
    choose the signature and the
    replay inputs, and run them on it. ReplayError when the model's own warmup file fails
    on it (TF Serving would fail to load it too)."""
    settings = deps.settings
    with SessionModel.open(source, settings.tags) as original:
        chosen = choose_signature(model, settings.signature_key, original.signature_keys(),
                                  deps.shape_source)
        if chosen.key is None:
            return Prepared(settings.signature_key, None,
                            f"nothing to convert: {chosen.reason}")
        if chosen.key != settings.signature_key:
            _LOG.info("%s/%s: %s", model, version, chosen.reason)
        signature = original.signature(chosen.key)
        try:
            replay = choose_replay_inputs(
                model, signature, source, shape_source=deps.shape_source,
                max_shape_sets=policy.max_engines,
                default_batch_sizes=policy.default_batch_sizes,
            )
        except InputFnError as exc:
            return Prepared(chosen.key, None, f"no replay inputs can be made for it: {exc}")
        held_out = replay.held_out()
        try:
            expected = original.run(signature.key, replay.inputs)
            # The replay inputs (one per shape set first) are checked whatever else is:
            # they are the shapes the version will serve; held-out samples add inputs it
            # was never calibrated on.
            positions = replay.verify_positions(settings.max_verify_inputs)
            checked = tuple(replay.inputs[i] for i in positions)
            checked_expected = [expected[i] for i in positions]
            checked_on = REPLAY_INPUTS
            if held_out:
                checked, checked_on = held_out + checked, f"{HELD_OUT_SAMPLES} and {REPLAY_INPUTS}"
                checked_expected = [*original.run(signature.key, held_out), *checked_expected]
        except ReplayError as exc:
            if replay.origin is ReplayOrigin.MODEL_WARMUP:
                raise  # TF Serving would fail to load the original with this warmup file
            return Prepared(chosen.key, None, f"its replay inputs fail on it ({exc.what})")
    return Prepared(chosen.key, replay, checked=checked,
                    checked_expected=tuple(checked_expected), checked_on=checked_on)


def verify_against_original(
    prepared: Prepared, converted_dir: Path, settings: JobSettings, check: AccuracyCheck
) -> Comparison:
    """Run the converted model at ``converted_dir`` as TF Serving does on the prepared
    check inputs (``Prepared.checked``) and compare with the original's outputs;
    VerificationError when an output fails ``check``."""
    assert prepared.replay is not None, "verify only what was replayed"
    with SessionModel.open(converted_dir, settings.tags) as converted:
        produced = converted.run(prepared.signature_key, prepared.checked)
    comparison = compare_outputs(produced, prepared.checked_expected, check)
    if not comparison.matches:
        raise VerificationError(
            "the converted model does not match the original in a TF1 Session on the "
            f"{prepared.checked_on}: {comparison.describe()}", where=str(converted_dir))
    return comparison


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
