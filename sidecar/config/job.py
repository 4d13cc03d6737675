"""Settings of the per-version job that are not part of a model's policy: the ``job``
section of the settings (``[job]``, ``TFTRT_SIDECAR_JOB_<FIELD>``, ``--job-<field>``)."""

from __future__ import annotations

from dataclasses import dataclass

from converter import TOLERANCE
from sidecar.config import values
from sidecar.config.schema import setting


@dataclass(frozen=True)
class JobSettings:
    """The signature a job converts, the tags it loads, how strictly it verifies."""

    signature_key: str = setting(
        "serving_default", values.parse_text, "--job-signature-key", "KEY",
        "the signature converted, replayed and warmed up (default {default})")
    """The signature that is converted, replayed and written into the warmup file."""

    tags: tuple[str, ...] = setting(
        ("serve",), values.parse_words, "--job-tags", "TAG,...",
        "the MetaGraph tags TF Serving loads (default {default})")
    """The MetaGraph tags TF Serving loads (``--saved_model_tags``)."""

    max_verify_inputs: int = setting(
        32, values.positive_int_parser(at_most=100_000), "--job-max-verify-inputs", "COUNT",
        "most replay inputs a converted version is compared on (default {default})")
    """Most replay inputs the converted model is compared on (one per shape set first) when
    no recorded requests are held out; held-out requests are all compared."""

    fp32_tolerance: float = setting(
        TOLERANCE["FP32"], values.parse_tolerance, "--job-fp32-tolerance", "ERROR",
        "largest scaled error of an FP32 version (default {default})")
    """Largest scaled error (``max|converted - original| / (1 + max|original|)``) for FP32."""

    fp16_tolerance: float = setting(
        TOLERANCE["FP16"], values.parse_tolerance, "--job-fp16-tolerance", "ERROR",
        "largest scaled error of an FP16 or BF16 version (default {default})")
    """Largest scaled error for the 16-bit floats: FP16, and BF16 (which FP16 becomes on a
    CPU with native bf16, so both are verified alike)."""

    int8_tolerance: float = setting(
        TOLERANCE["INT8"], values.parse_tolerance, "--job-int8-tolerance", "ERROR",
        "largest scaled error of an INT8 version (default {default})")
    """Largest scaled error for INT8 (int8 through oneDNN on a CPU, TF-TRT's on a GPU)."""

    def tolerance_for(self, precision: str) -> float:
        """The largest scaled error accepted for engines of ``precision``."""
        return {"FP16": self.fp16_tolerance, "BF16": self.fp16_tolerance,
                "INT8": self.int8_tolerance}.get(precision.upper(), self.fp32_tolerance)
