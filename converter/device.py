"""The build device: its XLA device type, a name for engine-cache namespaces, and
what its precisions compute in (FP16 in bfloat16 on a CPU with bf16 arithmetic;
INT8 through oneDNN's int8 kernels on a CPU)."""

from __future__ import annotations

import dataclasses
import pathlib
import platform
import re
from collections.abc import Iterable
from typing import Final

import tensorflow as tf

from converter.errors import InvalidParameterError
from converter.onednn import ONEDNN_VARIABLE, onednn_enabled
from converter.params import TrtPrecisionMode

NATIVE_BF16_FLAGS: Final = frozenset({"avx512_bf16", "amx_bf16"})
"""/proc/cpuinfo flags of a CPU with bfloat16 arithmetic (AVX512_BF16, AMX): there
oneDNN's bf16 kernels beat float32 (DESIGN fact 19); elsewhere oneDNN falls back to
Eigen, which emulates bf16 no faster than float32."""

INT8_DOT_FLAGS: Final = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
"""/proc/cpuinfo flags of a CPU with int8 dot-product instructions (VNNI, AMX), where
oneDNN's int8 kernels are fastest; without them oneDNN multiplies int8 with AVX2's
16-bit multiply-adds: slower, and measured like every candidate."""


@dataclasses.dataclass(frozen=True)
class BuildDevice:
    """The device engines are compiled for and measured on."""

    kind: str
    """"GPU" or "CPU"."""

    model: str
    """The device's model name (GPU name, or the CPU's model and architecture)."""

    native_bf16: bool = False
    """A CPU with bfloat16 arithmetic (see `NATIVE_BF16_FLAGS`); False for GPUs."""

    int8_dot: bool = False
    """A CPU with int8 dot-product instructions (see `INT8_DOT_FLAGS`); False for GPUs."""

    onednn: bool = False
    """Whether this process runs CPU kernels through oneDNN (`onednn.onednn_enabled`),
    which INT8 needs; False for GPUs."""

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
    present = frozenset(cpu_flags() if flags is None else flags)
    return BuildDevice(kind="CPU", model=_cpu_model(),
                       native_bf16=bool(NATIVE_BF16_FLAGS & present),
                       int8_dot=bool(INT8_DOT_FLAGS & present), onednn=onednn_enabled())


def engine_namespace(device: BuildDevice) -> str:
    """The engine-cache sub-directory for this TensorFlow version and device.

    XLA's persistent-cache key holds neither, so both go into the path."""
    return f"tf-{tf.__version__}/{device.slug}"


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    """The precision a conversion computes in on its build device, and why."""

    precision: str
    """"FP32", "FP16" (XLA segments in half precision), "BF16" (the whole frozen graph
    in bfloat16 through oneDNN) or "INT8" (the frozen graph in int8 through oneDNN on a
    CPU; TF-TRT on a GPU)."""
    reason: str


_NO_BF16 = ("this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag in "
            "/proc/cpuinfo), where oneDNN would emulate it no faster than float32")


def _int8(device: BuildDevice) -> PrecisionChoice:
    if device.kind != "CPU":
        raise InvalidParameterError(
            "precision_mode='INT8' on a GPU needs backend='tensorrt' (TensorFlow <= 2.17 "
            "built with TensorRT); the xla backend's INT8 is oneDNN's, for CPUs. Use "
            "precision_mode='FP16' or 'FP32' here."
        )
    if not device.onednn:
        raise InvalidParameterError(
            "precision_mode='INT8' needs oneDNN, which is off in this process (TensorFlow "
            "turns it on by default only on CPUs with VNNI, BF16 or AMX): start the "
            f"converter with {ONEDNN_VARIABLE}=1, and TF Serving with the same, since int8 "
            "ops run only with it; or use precision_mode='FP32'."
        )
    instructions = ("int8 dot products (VNNI or AMX)" if device.int8_dot else
                    "no int8 dot-product instructions (no VNNI or AMX: oneDNN multiplies "
                    "int8 with AVX2), so INT8 wins only where it measures faster")
    return PrecisionChoice(TrtPrecisionMode.INT8, f"requested; this CPU has {instructions}")


def choose_precision(requested: str, device: BuildDevice) -> PrecisionChoice:
    """What `requested` (a ConversionParams.precision_mode) computes in on `device`.

    A CPU's fast 16-bit float is bfloat16 where it has bf16 arithmetic, so FP16 means
    BF16 there; elsewhere FP16 keeps its half-precision XLA segments, as on a GPU.
    INT8 needs oneDNN in this process (InvalidParameterError says so where it is off)."""
    if requested == TrtPrecisionMode.INT8:
        return _int8(device)
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
