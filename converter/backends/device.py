"""The build device: its XLA device type, a name for engine-cache namespaces, and
the precision it computes FP16 in (bfloat16 on a CPU with bf16 arithmetic)."""

from __future__ import annotations

import dataclasses
import pathlib
import platform
import re
from collections.abc import Iterable
from typing import Final

import tensorflow as tf

from converter.params import TrtPrecisionMode

NATIVE_BF16_FLAGS: Final = frozenset({"avx512_bf16", "amx_bf16"})
"""/proc/cpuinfo flags of a CPU with bfloat16 arithmetic (AVX512_BF16, AMX): there
oneDNN's bf16 kernels beat float32 (DESIGN fact 19); elsewhere oneDNN falls back to
Eigen, which emulates bf16 no faster than float32."""


@dataclasses.dataclass(frozen=True)
class BuildDevice:
    """The device engines are compiled for and measured on."""

    kind: str
    """"GPU" or "CPU"."""

    model: str
    """The device's model name (GPU name, or the CPU's model and architecture)."""

    native_bf16: bool = False
    """A CPU with bfloat16 arithmetic (see `NATIVE_BF16_FLAGS`); False for GPUs."""

    @property
    def xla_device_type(self) -> str:
        """The XLA JIT device whose kernel registry says what compiles."""
        return f"XLA_{self.kind}_JIT"

    @property
    def slug(self) -> str:
        """A file-name-safe name: compiled code is only valid on the same model."""
        return re.sub(r"[^A-Za-z0-9.]+", "-", f"{self.kind}-{self.model}").strip("-").lower()


def _cpuinfo_field(name: str) -> str | None:
    """The first value of `name` in /proc/cpuinfo (None where there is none)."""
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == name:
                return value.strip()
    return None


def _cpu_model() -> str:
    model = _cpuinfo_field("model name")
    if model is not None:
        return f"{platform.machine()} {model}"
    return platform.machine() or "unknown"


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags as Linux names them (empty where /proc/cpuinfo is not)."""
    return frozenset((_cpuinfo_field("flags") or "").split())


def detect_build_device(flags: Iterable[str] | None = None) -> BuildDevice:
    """The first GPU TensorFlow sees, else the CPU, whose feature `flags` (default:
    this CPU's, `cpu_flags()`) say whether it computes bfloat16 natively."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = str(details.get("device_name", "gpu"))
        capability = details.get("compute_capability")
        if capability:
            name += f" sm{capability[0]}{capability[1]}"
        return BuildDevice(kind="GPU", model=name)
    native = bool(NATIVE_BF16_FLAGS & frozenset(cpu_flags() if flags is None else flags))
    return BuildDevice(kind="CPU", model=_cpu_model(), native_bf16=native)


def engine_namespace(device: BuildDevice) -> str:
    """The engine-cache sub-directory for this TensorFlow version and device.

    XLA's persistent-cache key holds neither, so both go into the path."""
    return f"tf-{tf.__version__}/{device.slug}"


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    """The precision a conversion computes in on its build device, and why."""

    precision: str
    """"FP32", "FP16" (XLA segments in half precision), "BF16" (the whole frozen graph
    in bfloat16 through oneDNN) or "INT8" (TF-TRT)."""
    reason: str


_NO_BF16 = ("this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag in "
            "/proc/cpuinfo), where oneDNN would emulate it no faster than float32")


def choose_precision(requested: str, device: BuildDevice) -> PrecisionChoice:
    """What `requested` (a ConversionParams.precision_mode) computes in on `device`.

    A CPU's fast 16-bit float is bfloat16 where it has bf16 arithmetic, so FP16 means
    BF16 there; elsewhere FP16 keeps its half-precision XLA segments, as on a GPU."""
    if requested == TrtPrecisionMode.FP16:
        if device.kind == "CPU" and device.native_bf16:
            return PrecisionChoice(TrtPrecisionMode.BF16, "FP16 on a CPU with native bfloat16 "
                                   "(AVX512_BF16 or AMX): computes in bfloat16, the CPU's "
                                   "16-bit float")
        if device.kind == "CPU":
            return PrecisionChoice(TrtPrecisionMode.FP16, f"{_NO_BF16}: FP16 computes in "
                                   "half precision in XLA segments")
        return PrecisionChoice(TrtPrecisionMode.FP16, "FP16 on a GPU: half precision")
    if requested == TrtPrecisionMode.BF16:
        if device.kind == "CPU" and device.native_bf16:
            return PrecisionChoice(TrtPrecisionMode.BF16, "requested")
        if device.kind == "CPU":
            return PrecisionChoice(TrtPrecisionMode.FP32, f"{_NO_BF16}: FP32 only")
        return PrecisionChoice(TrtPrecisionMode.FP32, "BF16 is a oneDNN rewrite for CPUs; "
                               "on a GPU ask for FP16 (half precision): FP32 only")
    return PrecisionChoice(requested, "requested")
