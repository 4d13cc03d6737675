"""Conversion parameters with TF-TRT's names, fields and defaults."""

from __future__ import annotations

import dataclasses
import enum
from typing import Final

from converter.errors import InvalidParameterError

DEFAULT_WORKSPACE_BYTES: Final = 1 << 30
BACKENDS: Final = ("auto", "xla", "tensorrt")


class TrtPrecisionMode:
    """Precision names, as in TF-TRT, plus BF16 (bfloat16, a CPU's 16-bit float)."""

    FP32: Final = "FP32"
    FP16: Final = "FP16"
    INT8: Final = "INT8"
    BF16: Final = "BF16"

    @staticmethod
    def supported_precision_modes() -> list[str]:
        """All precision names, in TF-TRT's order then BF16, and (as TF-TRT accepts
        them) their lowercase forms."""
        precisions = [TrtPrecisionMode.FP32, TrtPrecisionMode.FP16, TrtPrecisionMode.INT8,
                      TrtPrecisionMode.BF16]
        return precisions + [p.lower() for p in precisions]


class Fallback(enum.Enum):
    """What a segment runs for a shape that has no prebuilt engine
    (`ConversionParams.allow_build_at_runtime` chooses; both backends report it)."""

    ENGINE = "engine"
    """Compile (or reuse) an engine for the new shape while serving."""
    NATIVE = "native"
    """Run the segment's plain TensorFlow ops: serving never compiles."""


TOLERANCE = {TrtPrecisionMode.FP32: 1e-4, TrtPrecisionMode.FP16: 2e-2,
             TrtPrecisionMode.BF16: 2e-2, TrtPrecisionMode.INT8: 5e-2}
"""Largest scaled error (see `serving.measuring.scaled_error`) a converted model, candidate
or engine may have against the original, by the precision it computes in: the one
table every check reads. BF16 keeps 8 significant bits to FP16's 11, yet gets FP16's
bound: a sidecar policy of FP16, which a bf16 CPU computes in BF16, is verified with
FP16's (measured: 7e-4 on ResNet50, 6e-3 on a 4-layer encoder; DESIGN fact 19).
INT8's is the bound the sidecar held TF-TRT's INT8 engines to (measured
1.4e-2 on a trained digits CNN, whose top-1 stayed 100% the same)."""


@dataclasses.dataclass(frozen=True)
class ConversionParams:
    """How to convert a model; TF-TRT's `TrtConversionParams` plus `backend`."""

    max_workspace_size_bytes: int = DEFAULT_WORKSPACE_BYTES
    """Scratch memory an engine may use (TensorRT only; XLA sizes its own)."""

    precision_mode: str = TrtPrecisionMode.FP32
    """"FP32", "FP16" (half precision; on a CPU with native bfloat16, bfloat16), "BF16"
    (bfloat16, on such a CPU) or "INT8" (int8 through oneDNN on a CPU, calibrated on
    `convert(calibration_input_fn=...)` or with the ranges of a quantization-aware
    model's fake-quant nodes; TF-TRT on a GPU); lowercase too. Every
    16-bit and int8 candidate is measured against FP32 ones, and the fastest that is
    accurate wins."""

    minimum_segment_size: int = 3
    """Smallest number of compute ops in an engine; -1 converts nothing."""

    maximum_cached_engines: int = 1
    """Most prebuilt input-shape sets per segment, most frequent first."""

    use_calibration: bool = True
    """INT8 only: calibrate ranges with `calibration_input_fn`; False takes them from
    the graph's fake-quantization nodes (a quantization-aware-trained model's
    FakeQuantWithMinMaxVars and kin, QuantizeAndDequantizeV2/V3/V4) and accepts no
    calibration inputs."""

    allow_build_at_runtime: bool = True
    """Whether a shape that was not prebuilt may compile an engine while serving.

    False means such shapes run the native TensorFlow segment, so serving never
    compiles."""

    keep_slower_engines: bool = False
    """Keep every engine that compiles and matches native numerically, even where
    it did not beat native on the build machine (e.g. a busy build machine, or to
    compare engines in serving). By default only faster engines are kept.

    xla backend only: TF-TRT keeps every engine it builds, so backend="tensorrt"
    refuses True and backend="auto" picks xla for it."""

    backend: str = "auto"
    """"xla" (stock TensorFlow), "tensorrt" (TensorFlow's own TF-TRT: TF <= 2.17 built
    with TensorRT, with a GPU) or "auto" (tensorrt where it can run, else xla; the
    report says which and why)."""

    def __post_init__(self) -> None:
        if self.precision_mode not in TrtPrecisionMode.supported_precision_modes():
            raise InvalidParameterError(
                f"precision_mode={self.precision_mode!r} is not a precision; "
                f"use one of {TrtPrecisionMode.supported_precision_modes()}."
            )
        # One spelling inside: every check and table compares the uppercase name.
        object.__setattr__(self, "precision_mode", self.precision_mode.upper())
        if self.minimum_segment_size <= 0 and self.minimum_segment_size != -1:
            raise InvalidParameterError(
                f"minimum_segment_size={self.minimum_segment_size} is invalid; use a positive "
                "number of ops, or -1 to convert nothing."
            )
        if self.maximum_cached_engines < 1:
            raise InvalidParameterError(
                f"maximum_cached_engines={self.maximum_cached_engines} is invalid; "
                "use 1 or more."
            )
        if self.max_workspace_size_bytes <= 0:
            raise InvalidParameterError(
                f"max_workspace_size_bytes={self.max_workspace_size_bytes} is invalid; "
                "use a positive number of bytes."
            )
        if self.backend not in BACKENDS:
            raise InvalidParameterError(
                f"backend={self.backend!r} is not a backend; use one of {list(BACKENDS)}."
            )

    def replace(self, **changes: object) -> ConversionParams:
        """A copy with some fields changed (and validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def _replace(self, **changes: object) -> ConversionParams:
        """TF-TRT's params are a namedtuple; its recipes call `_replace`."""
        return self.replace(**changes)
