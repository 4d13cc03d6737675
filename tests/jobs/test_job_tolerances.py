"""Which tolerance a job verifies a converted version with, by the precision it computes in."""

from __future__ import annotations

from converter import TOLERANCE
from sidecar.config.job import JobSettings


def test_bf16_is_verified_like_fp16_and_each_precision_reads_its_own_bound():
    settings = JobSettings()
    assert settings.tolerance_for("FP32") == TOLERANCE["FP32"]
    assert settings.tolerance_for("FP16") == TOLERANCE["FP16"]
    # A policy of FP16 computes in BF16 on a CPU with native bf16: same bound.
    assert settings.tolerance_for("BF16") == settings.tolerance_for("bf16") == TOLERANCE["BF16"]
    assert settings.tolerance_for("INT8") == settings.int8_tolerance == TOLERANCE["INT8"]
    assert TOLERANCE["INT8"] > TOLERANCE["FP16"]
