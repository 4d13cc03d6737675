"""What a job learns from the original before converting it: the signature to convert,
the inputs to replay, and the original's outputs on them (what the converted model must
match)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from converter import InputFnError
from sidecar.config import ModelPolicy
from sidecar.jobs.dependencies import JobDependencies
from sidecar.jobs.errors import ReplayError, VerificationError
from sidecar.jobs.replay import ReplayInputs, ReplayOrigin, choose_replay_inputs
from sidecar.jobs.session_model import Arrays, SessionModel
from sidecar.jobs.settings import JobSettings
from sidecar.jobs.signature_choice import choose_signature
from sidecar.jobs.verify import Comparison, compare_outputs

_LOG = logging.getLogger("sidecar.jobs")


@dataclass(frozen=True)
class Prepared:
    """What the CONVERTING stage learned from the original."""

    signature_key: str
    """The signature converted: the configured one, or the busiest (choose_signature)."""

    replay: ReplayInputs | None
    """The inputs built, verified and warmed up for; None: publish the original."""

    expected: list[Arrays]
    """The original's outputs on ``replay``'s inputs."""

    no_replay_reason: str = ""
    """Why there is nothing to replay (so the original is published)."""


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
            return Prepared(settings.signature_key, None, [],
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
            return Prepared(chosen.key, None, [], f"no replay inputs can be made for it: {exc}")
        try:
            expected = original.run(signature.key, replay.inputs)
        except ReplayError as exc:
            if replay.origin is ReplayOrigin.MODEL_WARMUP:
                raise  # TF Serving would fail to load the original with this warmup file
            return Prepared(chosen.key, None, [], f"its replay inputs fail on it ({exc.what})")
    return Prepared(chosen.key, replay, expected)


def verify_against_original(
    prepared: Prepared, converted_dir: Path, settings: JobSettings, precision: str
) -> Comparison:
    """Run the converted model at ``converted_dir`` as TF Serving does on (up to
    ``settings.max_verify_inputs`` of) the replayed inputs and compare with the original's
    outputs; VerificationError when they differ beyond the precision's tolerance."""
    assert prepared.replay is not None, "verify only what was replayed"
    positions = prepared.replay.verify_positions(settings.max_verify_inputs)
    with SessionModel.open(converted_dir, settings.tags) as converted:
        produced = converted.run(prepared.signature_key,
                                 [prepared.replay.inputs[i] for i in positions])
    comparison = compare_outputs(produced, [prepared.expected[i] for i in positions],
                                 settings.tolerance_for(precision))
    if not comparison.matches:
        raise VerificationError(
            "the converted model does not match the original in a TF1 Session: "
            f"{comparison.describe()}", where=str(converted_dir))
    return comparison
