"""What a published version holds, as plain values: its engines and the request shape sets
it was built for and warms up (read by :mod:`sidecar.publish.published`).

A version is *built for* a request shape set when the sidecar converted it with
that shape set replayed through ``build()``: engines were compiled and measured
for it (kept where faster than native, dropped where not, so a rebuild cannot do
better) and its warmup file runs it before TF Serving serves the version. Those
are the warmup file's shape sets of a version that has a conversion report. A
version published as the original because conversion failed has no report and
is built for nothing; its warmup shape sets are still known (``warmed_up``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sidecar.publish.published_accuracy import AccuracyRecord
from sidecar.shapes import ShapeSet


@dataclass(frozen=True)
class EngineInfo:
    """One engine the converter compiled and measured."""

    segment: str
    """The segment it was compiled for."""
    shapes: tuple[tuple[int, ...], ...]
    """One shape per segment input."""
    precision: str
    """What it computes in (FP32 or FP16)."""
    compile_seconds: float
    """How long compiling it took."""
    speedup: float
    """Native time over engine time, measured on the build device."""
    kept: bool
    """Whether it is used (faster than native); dropped engines are listed too."""
    reason: str
    """Why it was kept or dropped."""


@dataclass(frozen=True)
class PublishedVersion:
    """A version in the serving base and what it was built with."""

    model: str
    """Model name."""
    version: int
    """Version number."""
    path: Path
    """Its directory."""
    backend: str
    """Engine compiler used ("" without a conversion report)."""
    backend_reason: str
    """Why that backend (e.g. "auto: TF-TRT unavailable (...)")."""
    candidate: str
    """The converter's measured choice ("original", "frozen", "frozen+xla", "frozen+bf16",
    "frozen+int8", "xla"; "" when nothing was measured)."""
    candidate_reason: str
    """Why it won."""
    device: str
    """Build device slug ("" without a conversion report)."""
    engines: tuple[EngineInfo, ...]
    """Every engine compiled for it."""
    warmed_up: tuple[tuple[str, ShapeSet], ...]
    """(signature, request shape set) pairs its warmup file runs."""
    prebuilt: tuple[tuple[str, ShapeSet], ...]
    """(signature, request shape set) pairs it was built for (see the module's text)."""
    accuracy: AccuracyRecord | None = None
    """What it computes in and how accurate its job measured it; None when not measured
    (published as the original after a failed conversion, or before records existed)."""

    @property
    def kept_engines(self) -> int:
        """How many engines it uses."""
        return sum(1 for engine in self.engines if engine.kept)

    def prebuilt_for(self, signature: str) -> tuple[ShapeSet, ...]:
        """The shape sets of one signature it was built for."""
        return tuple(shape_set for name, shape_set in self.prebuilt if name == signature)

    def warmed_up_for(self, signature: str) -> tuple[ShapeSet, ...]:
        """The shape sets of one signature its warmup file runs."""
        return tuple(shape_set for name, shape_set in self.warmed_up if name == signature)
