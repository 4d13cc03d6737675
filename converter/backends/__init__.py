"""Backends compile segments into engines; this module picks one."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from converter.errors import BackendUnavailableError, InvalidParameterError
from converter.params import ConversionParams, TrtPrecisionMode


@dataclasses.dataclass(frozen=True)
class BackendChoice:
    """The backend a conversion uses, and why it was chosen."""

    name: str
    reason: str


def tensorrt_unavailable_reason() -> str | None:
    """Why TF-TRT cannot run in this process, or None when it can."""
    if not tf.sysconfig.get_build_info().get("is_tensorrt_build", False):
        return (
            f"TensorFlow {tf.__version__} was not built with TensorRT "
            "(TF-TRT was switched off from TensorFlow 2.18 on)"
        )
    if not tf.config.list_physical_devices("GPU"):
        return "no GPU is visible to TensorFlow"
    return None


def choose_backend(params: ConversionParams) -> BackendChoice:
    """Resolve `params.backend` for this process; raise if it cannot run here."""
    trt_missing = tensorrt_unavailable_reason()
    if params.backend == "tensorrt":
        if trt_missing is not None:
            raise BackendUnavailableError(
                f"backend='tensorrt' cannot run here: {trt_missing}. Either use "
                "backend='xla' (or 'auto'), which compiles engines with XLA on any "
                "TensorFlow, or run on TensorFlow 2.17 with a GPU and TensorRT "
                "(e.g. the TF 2.17 GPU image)."
            )
        raise BackendUnavailableError(
            "backend='tensorrt' is not implemented in this release of tftrt-sidecar; "
            "use backend='xla'."
        )
    if params.backend == "xla":
        reason = "requested"
    elif trt_missing is not None:
        reason = f"auto: TF-TRT unavailable ({trt_missing})"
    else:
        reason = "auto: TF-TRT is present, but this release has no tensorrt backend yet"
    if params.precision_mode == TrtPrecisionMode.INT8:
        raise InvalidParameterError(
            "precision_mode='INT8' is not supported by the xla backend; INT8 needs "
            "backend='tensorrt' (TensorFlow <= 2.17 built with TensorRT, with a GPU). "
            "Use precision_mode='FP16' or 'FP32' with the xla backend."
        )
    return BackendChoice(name="xla", reason=reason)
