"""What the serving base holds: each published version's engines and prebuilt request shapes.

Read from the files a job publishes: the converter's report (read as the
converter's own :class:`converter.ConversionReport`), the job's accuracy record
(:mod:`sidecar.publish.published_accuracy`) and TF Serving's warmup
file, whose requests are the shapes engines were built for. A published version
never changes, so what is read is cached per (model, version, directory inode).

What a version was *built for* is defined with its values in
:mod:`sidecar.publish.published_version`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from converter import ConversionReport, SavedModelError
from sidecar.base.errors import SidecarError
from sidecar.publish.published_accuracy import AccuracyRecord
from sidecar.publish.published_version import EngineInfo, PublishedVersion
from sidecar.shapes import ShapeSet
from sidecar.shapes.requests import predict_shape_set, signature_called
from sidecar.tfserving.layout import published_models, published_versions
from sidecar.tfserving.warmup import read_predict_requests

_LOG = logging.getLogger(__name__)


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
    accuracy = _read_accuracy(path)
    if report is None:
        return PublishedVersion(
            model=model, version=version, path=path, backend="", backend_reason="",
            candidate="", candidate_reason="", device="", engines=(), warmed_up=warmed_up,
            prebuilt=(), accuracy=accuracy,
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
        accuracy=accuracy,
    )


def _read_report(path: Path) -> ConversionReport | None:
    try:
        return ConversionReport.read(path)
    except SavedModelError as exc:
        _LOG.warning("cannot read the conversion report of %s: %s", path, exc)
        return None


def _read_accuracy(path: Path) -> AccuracyRecord | None:
    try:
        return AccuracyRecord.read(path)
    except SavedModelError as exc:
        _LOG.warning("cannot read the accuracy record of %s: %s", path, exc)
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
