"""Backends compile segments into engines; this module picks one."""

from __future__ import annotations

import dataclasses

from converter.backends.tensorrt_runtime import detect_tensorrt_runtime
from converter.errors import BackendUnavailableError, InvalidParameterError
from converter.params import ConversionParams, TrtPrecisionMode


@dataclasses.dataclass(frozen=True)
class BackendChoice:
    """The backend a conversion uses, and why it was chosen."""

    name: str
    reason: str


def tensorrt_unavailable_reason() -> str | None:
    """Why TF-TRT cannot run in this process, or None when it can."""
    return detect_tensorrt_runtime().problem()


def choose_backend(params: ConversionParams) -> BackendChoice:
    """Resolve `params.backend` for this process; raise if it cannot run here."""
    return resolve_backend(params, tensorrt_unavailable_reason())


def resolve_backend(params: ConversionParams, tensorrt_problem: str | None) -> BackendChoice:
    """Resolve `params.backend` given why TF-TRT cannot run (None: it can).

    `auto` prefers TF-TRT where it runs, unless `keep_slower_engines` (an xla
    setting) or BF16 (bfloat16, which TF-TRT lacks) asks for xla; INT8, which TF-TRT
    has on GPUs, outranks it. The xla backend's INT8 (oneDNN's, on a CPU) is checked
    against the build device (`device.choose_precision`)."""
    bf16 = params.precision_mode == TrtPrecisionMode.BF16
    if params.backend == "tensorrt" and bf16:
        raise InvalidParameterError(
            "precision_mode='BF16' is not a TF-TRT precision (TF-TRT has FP32, FP16 and "
            "INT8); use precision_mode='FP16' with backend='tensorrt', or backend='auto' "
            "or 'xla' for bfloat16 on a CPU with native bf16."
        )
    if params.backend == "tensorrt":
        if tensorrt_problem is not None:
            raise BackendUnavailableError(
                f"backend='tensorrt' cannot run here: {tensorrt_problem}. Either use "
                "backend='xla' (or 'auto'), which compiles engines with XLA on any "
                "TensorFlow, or run on TensorFlow 2.17 with a GPU and TensorRT "
                "(e.g. the TF 2.17 GPU image)."
            )
        return _tensorrt(params, "requested")
    if params.backend == "auto" and tensorrt_problem is None:
        if bf16:
            reason = "auto: BF16 is not a TF-TRT precision"
        elif not params.keep_slower_engines or params.precision_mode == TrtPrecisionMode.INT8:
            return _tensorrt(params, "auto: TF-TRT can run here (TensorRT build, GPU visible)")
        else:
            reason = ("auto: keep_slower_engines=True is an xla setting (TF-TRT does not "
                      "time engines against native TensorFlow)")
    elif params.backend == "xla":
        reason = "requested"
    else:
        reason = f"auto: TF-TRT unavailable ({tensorrt_problem})"
    return BackendChoice(name="xla", reason=reason)


def _tensorrt(params: ConversionParams, reason: str) -> BackendChoice:
    if params.keep_slower_engines:
        raise InvalidParameterError(
            "keep_slower_engines=True has no meaning with backend='tensorrt': TF-TRT "
            "keeps every engine it builds and does not time them against native "
            "TensorFlow. Drop keep_slower_engines, or use backend='xla', which measures "
            "engines and keeps only the faster ones unless keep_slower_engines=True."
        )
    return BackendChoice(name="tensorrt", reason=reason)
