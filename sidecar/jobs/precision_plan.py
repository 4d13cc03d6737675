"""Which precision a job asks the converter for, and what INT8 calibrates on.

A policy's precision is the lowest the model may compute in (TF-TRT's
``precision_mode``); the converter measures every candidate it allows and keeps the
fastest that is accurate. INT8 needs ranges calibrated on real traffic: the recorded
requests the replay holds, less the held-out ones (:mod:`sidecar.jobs.replay`). Without
at least one to calibrate on and one to hold out, INT8 is not tried: the job asks for
FP16 instead (16-bit floats or FP32, what INT8 allows besides int8) and says why, so the
version is still converted and published rather than failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from converter import TrtPrecisionMode
from sidecar.jobs.replay import ReplayInputs
from sidecar.jobs.session_model import Arrays


@dataclass(frozen=True)
class PrecisionPlan:
    """What the converter is asked for."""

    precision_mode: str
    """The converter's ``precision_mode``."""

    calibration: Callable[[], Iterator[Arrays]] | None
    """``calibration_input_fn`` for INT8; None otherwise."""

    reason: str
    """What the policy allows, and what could not be tried and why."""

    def outcome(self, chosen: str | None, precision: str) -> str:
        """Why the version computes in ``precision``: this plan, then the converter's
        measured ``chosen`` candidate (None: the converter measured none)."""
        winner = f"candidate {chosen!r}" if chosen else "the converted model"
        return f"{self.reason}; {winner} measured fastest and accurate, computing in {precision}"


def plan_precision(precision: str, replay: ReplayInputs) -> PrecisionPlan:
    """The plan for a policy's ``precision`` with these replay inputs."""
    if precision != TrtPrecisionMode.INT8:
        return PrecisionPlan(precision, None, f"the policy allows {_ALLOWS[precision]}")
    calibrating, held_out = replay.calibration_samples(), replay.held_out()
    if calibrating:
        return PrecisionPlan(precision, replay.calibration_fn(), (
            f"the policy allows {_ALLOWS[precision]}; INT8 calibrated on "
            f"{len(calibrating)} recorded request(s), {len(held_out)} held out for the "
            "accuracy check"))
    if replay.samples:
        missing = (f"only {len(replay.samples)} recorded request was sampled, and it is held "
                   "out for the accuracy check")
    else:
        missing = (f"no recorded request was sampled for it (the replay inputs are "
                   f"{replay.origin.value}, which do not stand for production traffic)")
    return PrecisionPlan(TrtPrecisionMode.FP16, None, (
        f"the policy allows {_ALLOWS[precision]}, but INT8 was not tried: calibration needs "
        f"recorded requests and {missing}; converted allowing a 16-bit float or FP32, as "
        "for precision FP16"))


_ALLOWS = {
    TrtPrecisionMode.FP32: "FP32 only",
    TrtPrecisionMode.FP16: "a 16-bit float (bfloat16 on a CPU with native bf16) or FP32",
    TrtPrecisionMode.BF16: "bfloat16 or FP32",
    TrtPrecisionMode.INT8: "INT8, a 16-bit float or FP32",
}
"""What each policy precision lets the converter measure, in words."""
