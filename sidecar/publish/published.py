"""What the serving base holds: each published version's engines and prebuilt request shapes.

Read from the files a job publishes: the converter's report (read as the
converter's own :class:`converter.ConversionReport`) and TF Serving's warmup
file, whose requests are the shapes engines were built for. A published version never
changes, so what is read is cached per (model, version, directory inode).

A version is *built for* a request shape set when the sidecar converted it with
that shape set replayed through ``build()``: engines were compiled and measured
for it (kept where faster than native, dropped where not, so a rebuild cannot do
better) and its warmup file runs it before TF Serving serves the version. Those
are the warmup file's shape sets of a version that has a conversion report. A
version published as the original because conversion failed has no report and
is built for nothing; its warmup shape sets are still known (``warmed_up``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from converter import ConversionReport, SavedModelError
from sidecar.errors import SidecarError
from sidecar.publish.layout import published_models, published_versions
from sidecar.shapes import ShapeSet
from sidecar.shapes.requests import predict_shape_set, signature_called
from sidecar.warmup import read_predict_requests

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineInfo:
    """One engine the converter compiled and measured."""

    segment: str
    """The segment it was compiled for."""
    shapes: tuple[tuple[int, ...], ...]
    """One shape per segment input."""
    precision: str
    """FP32 or FP16."""
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
    """The converter's measured choice ("original", "frozen", "frozen+xla", "xla"; ""
    when nothing was measured)."""
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


class PublishedModels:
    """Reads published versions under ``serving_base``; thread-safe, cached.

    ``refresh_seconds`` bounds how stale the answer to "which version is served"
    may be (it is asked on the tap's recording thread for every request).
    """

    def __init__(
        self,
        serving_base: Path,
        *,
        refresh_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = serving_base
        self._refresh = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._versions: dict[tuple[str, int, int], PublishedVersion] = {}
        self._newest: dict[str, tuple[float, int | None]] = {}

    @property
    def serving_base(self) -> Path:
        """The directory holding ``<model>/<version>/``."""
        return self._base

    def versions(self, model: str) -> list[int]:
        """Versions of ``model`` TF Serving can see, ascending."""
        return published_versions(self._base / model)

    def models(self) -> list[str]:
        """Names of the model directories in the serving base that hold a version, sorted."""
        return published_models(self._base)

    def serving_version(self, model: str) -> int | None:
        """The newest version TF Serving can see (the one it serves), at most
        ``refresh_seconds`` old; None if there is none."""
        now = self._clock()
        with self._lock:
            cached = self._newest.get(model)
            if cached is not None and now - cached[0] < self._refresh:
                return cached[1]
        versions = self.versions(model)
        newest = versions[-1] if versions else None
        with self._lock:
            self._newest[model] = (now, newest)
        return newest

    def version(self, model: str, version: int) -> PublishedVersion | None:
        """What ``version`` of ``model`` holds, or None if it is not published."""
        path = self._base / model / str(version)
        try:
            inode = path.stat().st_ino
        except FileNotFoundError:
            return None
        key = (model, version, inode)
        with self._lock:
            found = self._versions.get(key)
        if found is None:
            found = _read_version(model, version, path)
            with self._lock:
                self._versions[key] = found
        return found

    def prebuilt_for(self, model: str, signature: str) -> tuple[ShapeSet, ...]:
        """The shape sets of ``signature`` the served version of ``model`` was built for."""
        newest = self.serving_version(model)
        if newest is None:
            return ()
        info = self.version(model, newest)
        return info.prebuilt_for(signature) if info is not None else ()


def _read_version(model: str, version: int, path: Path) -> PublishedVersion:
    report = _read_report(path)
    warmed_up = _warmup_shape_sets(path)
    if report is None:
        return PublishedVersion(
            model=model, version=version, path=path, backend="", backend_reason="",
            candidate="", candidate_reason="", device="", engines=(), warmed_up=warmed_up,
            prebuilt=(),
        )
    engines = tuple(
        EngineInfo(
            segment=segment.name,
            shapes=tuple(tuple(shape) for shape in engine.shapes),
            precision=engine.precision,
            compile_seconds=engine.compile_seconds,
            speedup=engine.speedup,
            kept=engine.kept,
            reason=engine.reason,
        )
        for segment in report.segments
        for engine in segment.engines
    )
    return PublishedVersion(
        model=model,
        version=version,
        path=path,
        backend=report.backend,
        backend_reason=report.backend_reason,
        candidate=report.choice.chosen if report.choice else "",
        candidate_reason=report.choice.reason if report.choice else "",
        device=report.device,
        engines=engines,
        warmed_up=warmed_up,
        prebuilt=warmed_up if report.built else (),
    )


def _read_report(path: Path) -> ConversionReport | None:
    try:
        return ConversionReport.read(path)
    except SavedModelError as exc:
        _LOG.warning("cannot read the conversion report of %s: %s", path, exc)
        return None


def _warmup_shape_sets(path: Path) -> tuple[tuple[str, ShapeSet], ...]:
    try:
        requests = read_predict_requests(path)
    except SidecarError as exc:
        _LOG.warning("cannot read the warmup file of %s: %s", path, exc)
        return ()
    found: list[tuple[str, ShapeSet]] = []
    for request in requests:
        seen = (signature_called(request.model_spec), predict_shape_set(request))
        if seen not in found:
            found.append(seen)
    return tuple(found)
