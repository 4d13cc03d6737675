"""The build device: its XLA device type and a name for engine-cache namespaces."""

from __future__ import annotations

import dataclasses
import pathlib
import platform
import re

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class BuildDevice:
    """The device engines are compiled for and measured on."""

    kind: str
    """"GPU" or "CPU"."""

    model: str
    """The device's model name (GPU name, or the CPU's model and architecture)."""

    @property
    def xla_device_type(self) -> str:
        """The XLA JIT device whose kernel registry says what compiles."""
        return f"XLA_{self.kind}_JIT"

    @property
    def slug(self) -> str:
        """A file-name-safe name: compiled code is only valid on the same model."""
        return re.sub(r"[^A-Za-z0-9.]+", "-", f"{self.kind}-{self.model}").strip("-").lower()


def _cpu_model() -> str:
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return f"{platform.machine()} {line.split(':', 1)[1].strip()}"
    return platform.machine() or "unknown"


def detect_build_device() -> BuildDevice:
    """The first GPU TensorFlow sees, else the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = str(details.get("device_name", "gpu"))
        capability = details.get("compute_capability")
        if capability:
            name += f" sm{capability[0]}{capability[1]}"
        return BuildDevice(kind="GPU", model=name)
    return BuildDevice(kind="CPU", model=_cpu_model())


def engine_namespace(device: BuildDevice) -> str:
    """The engine-cache sub-directory for this TensorFlow version and device.

    XLA's persistent-cache key holds neither, so both go into the path."""
    return f"tf-{tf.__version__}/{device.slug}"
