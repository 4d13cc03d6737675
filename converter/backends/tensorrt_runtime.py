"""Whether TensorFlow's own TF-TRT can run in this process, and if not, why."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

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
