"""Which backend converts: `params.backend` resolved against whether TensorFlow's own
TF-TRT can run in this process (and if not, why).

The xla backend (`converter.xla`) compiles segments with XLA on any TensorFlow; the
tensorrt backend (`converter.tensorrt`) hands the conversion to TF-TRT.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from converter.errors import BackendUnavailableError, InvalidParameterError
from converter.params import ConversionParams, TrtPrecisionMode

TensorrtVersion = tuple[int, int, int]

OLDEST_TENSORRT: TensorrtVersion = (7, 0, 0)
"""TF-TRT 2.17 refuses TensorRT older than 7 (linked or loaded)."""


def _dotted(version: TensorrtVersion) -> str:
    return ".".join(str(part) for part in version)


@dataclasses.dataclass(frozen=True)
class TensorrtRuntime:
    """What this process has that TF-TRT needs."""

    tensorflow_version: str
    tensorrt_build: bool
    """TensorFlow was built with TensorRT (False from TF 2.18 on)."""
    gpus: int
    """GPUs visible to TensorFlow."""
    linked_tensorrt: TensorrtVersion
    """The TensorRT TensorFlow was compiled against; (0, 0, 0) without TensorRT."""
    loaded_tensorrt: TensorrtVersion
    """The TensorRT library loaded at run time; (0, 0, 0) when libnvinfer is missing."""

    def problem(self) -> str | None:
        """Why TF-TRT cannot run here, or None when it can.

        The version rules are TF-TRT's own (`_check_trt_version_compatibility`):
        the same major version at build and run time, and the loaded library no
        older than the linked one."""
        if not self.tensorrt_build:
            return (
                f"TensorFlow {self.tensorflow_version} was not built with TensorRT "
                "(TF-TRT was switched off from TensorFlow 2.18 on)"
            )
        if self.gpus == 0:
            return f"no GPU is visible to TensorFlow {self.tensorflow_version}"
        linked, loaded = _dotted(self.linked_tensorrt), _dotted(self.loaded_tensorrt)
        if self.loaded_tensorrt < OLDEST_TENSORRT:
            return (
                f"TensorFlow {self.tensorflow_version} was built with TensorRT {linked}, "
                "but no usable TensorRT library (libnvinfer) could be loaded; install "
                f"TensorRT {linked} on this machine"
            )
        if (self.loaded_tensorrt[0] != self.linked_tensorrt[0]
                or self.loaded_tensorrt < self.linked_tensorrt):
            return (
                f"TensorFlow {self.tensorflow_version} was built with TensorRT {linked} "
                f"but loaded TensorRT {loaded}; TF-TRT needs the same major version, "
                "no older than the one it was built with"
            )
        return None


def detect_tensorrt_runtime() -> TensorrtRuntime:
    """Read the facts from this process's TensorFlow."""
    tensorrt_build = bool(tf.sysconfig.get_build_info().get("is_tensorrt_build", False))
    gpus = len(tf.config.list_physical_devices("GPU"))
    linked = loaded = (0, 0, 0)
    if tensorrt_build and gpus:
        # Only TensorRT builds have anything to report, and asking loads libnvinfer.
        from tensorflow.compiler.tf2tensorrt import _pywrap_py_utils as tensorrt_info

        linked = tuple(tensorrt_info.get_linked_tensorrt_version())
        loaded = tuple(tensorrt_info.get_loaded_tensorrt_version())
    return TensorrtRuntime(
        tensorflow_version=tf.__version__,
        tensorrt_build=tensorrt_build,
        gpus=gpus,
        linked_tensorrt=linked,
        loaded_tensorrt=loaded,
    )


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
