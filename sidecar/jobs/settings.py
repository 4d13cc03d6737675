"""Settings of the per-version job that are not part of a model's policy."""

from __future__ import annotations

import math
from dataclasses import dataclass

from converter import TOLERANCE
from sidecar.base.errors import ConfigError


@dataclass(frozen=True)
class JobSettings:
    """How a job finds the signature to convert and how strictly it verifies the result.

    Validated on construction; raises ConfigError naming the field.
    """

    signature_key: str = "serving_default"
    """The signature that is converted, replayed and written into the warmup file."""

    tags: tuple[str, ...] = ("serve",)
    """The MetaGraph tags TF Serving loads (``--saved_model_tags``)."""

    max_verify_inputs: int = 32
    """Most replay inputs the converted model is compared on (one per shape set first) when
    no recorded requests are held out; held-out requests are all compared."""

    fp32_tolerance: float = TOLERANCE["FP32"]
    """Largest scaled error (``max|converted - original| / (1 + max|original|)``) for FP32."""

    fp16_tolerance: float = TOLERANCE["FP16"]
    """Largest scaled error for the 16-bit floats: FP16, and BF16 (which FP16 becomes on a
    CPU with native bf16, so both are verified alike)."""

    int8_tolerance: float = TOLERANCE["INT8"]
    """Largest scaled error for INT8 (int8 through oneDNN on a CPU, TF-TRT's on a GPU)."""

    def __post_init__(self) -> None:
        if not self.signature_key:
            self._refuse("signature_key", self.signature_key, "is empty", "name a signature")
        if not self.tags or not all(self.tags):
            self._refuse("tags", self.tags, "is empty", 'give TF Serving\'s tags, e.g. ("serve",)')
        if self.max_verify_inputs < 1:
            self._refuse("max_verify_inputs", self.max_verify_inputs, "is below 1", "use 1 or more")
        for name in ("fp32_tolerance", "fp16_tolerance", "int8_tolerance"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                self._refuse(name, value, "is not a finite number >= 0", "use e.g. 1e-4")

    def tolerance_for(self, precision: str) -> float:
        """The largest scaled error accepted for engines of ``precision``."""
        return {"FP16": self.fp16_tolerance, "BF16": self.fp16_tolerance,
                "INT8": self.int8_tolerance}.get(precision.upper(), self.fp32_tolerance)

    @staticmethod
    def _refuse(field: str, value: object, problem: str, fix: str) -> None:
        raise ConfigError(
            field=f"JobSettings.{field}", value=value, source="job settings",
            problem=problem, fix=fix,
        )
