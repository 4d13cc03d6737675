"""Gauges computed when Prometheus scrapes: read from the journal, the serving base, the
engine cache, the shape store and the fault board, so they are right after a restart and
never drift.

A source that cannot be read is logged and its metric left out of that scrape (a
scrape never fails because, say, the engine cache volume is missing).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sidecar.base.errors import SidecarError
from sidecar.base.faults import FaultArea, FaultBoard
from sidecar.publish.published import PublishedModels
from sidecar.shapes import RecordedShapes
from sidecar.state import Job, JobJournal, JobState
from sidecar.watch.listing import read_incoming

_LOG = logging.getLogger("sidecar.metrics")

_READ_ERRORS = (SidecarError, OSError, sqlite3.Error)


class VersionStateCollector(Collector):
    """``tftrt_sidecar_versions{model,state}``: versions per journal state (every state
    shown), and ``tftrt_sidecar_rebuilds{model,state}``: the rebuilds among them."""

    def __init__(self, journal: JobJournal) -> None:
        self._journal = journal

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Count the journal's jobs by model and state."""
        try:
            jobs = self._journal.jobs()
        except _READ_ERRORS as exc:
            _LOG.warning("versions by state left out of this scrape: %s", exc)
            return
        yield _by_model_and_state(
            GaugeMetricFamily("tftrt_sidecar_versions", "Model versions by job state.",
                              labels=["model", "state"]), jobs)
        # The converted form of an original served first is its version's first build.
        converted_forms = {(job.model, job.converted_as) for job in jobs if job.converted_as}
        yield _by_model_and_state(
            GaugeMetricFamily("tftrt_sidecar_rebuilds",
                              "Coverage-triggered and requested rebuilds by job state.",
                              labels=["model", "state"]),
            [job for job in jobs
             if job.generation > 0 and (job.model, job.version) not in converted_forms])


class IncomingRefusedCollector(Collector):
    """``tftrt_sidecar_incoming_refused{kind}``: incoming directories that look like a model
    (``kind="model_name"``) or a version (``kind="version_name"``) but are not served.

    The names themselves are left to the log and the admin API's ListModels: a refused
    name is exactly the kind of string that makes a poor label.
    """

    def __init__(self, incoming_base: Path) -> None:
        self._base = incoming_base

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Count the refusals of one reading of the incoming base."""
        try:
            refused = read_incoming(self._base).refused
        except OSError as exc:
            _LOG.warning("refused incoming directories left out of this scrape: %s", exc)
            return
        family = GaugeMetricFamily(
            "tftrt_sidecar_incoming_refused",
            "Incoming directories not served because of their name (see the log or ListModels).",
            labels=["kind"])
        models = sum(1 for refusal in refused if refusal.path.parent == self._base)
        family.add_metric(["model_name"], models)
        family.add_metric(["version_name"], len(refused) - models)
        yield family


class PublishedEnginesCollector(Collector):
    """``tftrt_sidecar_published_version_engines{model,version}``: kept engines per version
    in the serving base."""

    def __init__(self, published: PublishedModels) -> None:
        self._published = published

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Read each published version's report (cached)."""
        family = GaugeMetricFamily(
            "tftrt_sidecar_published_version_engines",
            "Engines (kept, used) in each version TF Serving can see.",
            labels=["model", "version"],
        )
        try:
            for model in self._published.models():
                for version in self._published.versions(model):
                    info = self._published.version(model, version)
                    if info is not None:
                        family.add_metric([model, str(version)], info.kept_engines)
        except _READ_ERRORS as exc:
            _LOG.warning("engines per published version left out of this scrape: %s", exc)
            return
        yield family


ENGINE_CACHE_MAX_AGE_SECONDS = 60.0
"""How long one walk of the engine cache serves scrapes. The walk is the costliest part of
a scrape (tens of thousands of XLA cache files), and the cache only grows when a version's
engines are installed, so a minute-old size is good enough for a disk-usage gauge."""


class EngineCacheCollector(Collector):
    """``tftrt_sidecar_engine_cache_bytes{namespace}``: bytes per ``tf-<version>/<device>``,
    walked at most once per ``max_age_seconds`` (by ``clock``, monotonic seconds)."""

    def __init__(self, engine_cache_dir: Path,
                 max_age_seconds: float = ENGINE_CACHE_MAX_AGE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._root = engine_cache_dir
        self._max_age = max_age_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._walked: tuple[float, dict[str, int]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Sum file sizes per namespace (from the last walk while it is recent)."""
        family = GaugeMetricFamily(
            "tftrt_sidecar_engine_cache_bytes",
            "Bytes in the engine cache, per TensorFlow version and device namespace "
            f"(walked at most every {self._max_age:g} s).",
            labels=["namespace"],
        )
        try:
            sizes = self._sizes()
        except OSError as exc:
            _LOG.warning("engine cache size left out of this scrape: %s", exc)
            return
        for namespace, size in sorted(sizes.items()):
            family.add_metric([namespace], size)
        yield family

    def _sizes(self) -> dict[str, int]:
        with self._lock:
            now = self._clock()
            if self._walked is None or now - self._walked[0] >= self._max_age:
                self._walked = (now, _namespace_sizes(self._root))
            return self._walked[1]


class CoverageCollector(Collector):
    """``tftrt_sidecar_shape_coverage_ratio{model,signature}``: share of the shape store's
    recent requests whose shape set the served version has prebuilt."""

    def __init__(self, store: RecordedShapes, published: PublishedModels) -> None:
        self._store = store
        self._published = published

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Compute each signature's coverage over the store's window."""
        family = GaugeMetricFamily(
            "tftrt_sidecar_shape_coverage_ratio",
            "Share of recent requests whose shape set has a prebuilt engine in the served "
            "version.",
            labels=["model", "signature"],
        )
        try:
            for model, signature in self._store.signatures():
                prebuilt = self._published.prebuilt_for(model, signature)
                coverage = self._store.coverage(model, signature, prebuilt)
                family.add_metric([model, signature], coverage.share)
        except _READ_ERRORS as exc:
            _LOG.warning("shape coverage left out of this scrape: %s", exc)
            return
        yield family


def _by_model_and_state(family: GaugeMetricFamily, jobs: list[Job]) -> GaugeMetricFamily:
    counts: dict[str, dict[str, int]] = {}
    for job in jobs:
        per_state = counts.setdefault(job.model, {state.value: 0 for state in JobState})
        per_state[job.state.value] += 1
    for model, per_state in sorted(counts.items()):
        for state, count in per_state.items():
            family.add_metric([model, state], count)
    return family


def _namespace_sizes(root: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    if not root.is_dir():
        return sizes
    for version_dir in sorted(root.iterdir()):
        if not version_dir.is_dir():
            continue
        for device_dir in sorted(version_dir.iterdir()):
            if device_dir.is_dir():
                namespace = f"{version_dir.name}/{device_dir.name}"
                sizes[namespace] = _tree_bytes(device_dir)
    return sizes


def _tree_bytes(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except FileNotFoundError:
                continue  # replaced while we walked
    return total


class StorageFaultCollector(Collector):
    """``tftrt_sidecar_storage_fault{area}``: 1 per area (incoming, state, serving) while
    it has a fault, else 0; and ``tftrt_sidecar_storage_faults_total{area}``: how many
    faults each area has had since the start (a fault between two scrapes still shows)."""

    def __init__(self, board: FaultBoard) -> None:
        self._board = board

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Read the board."""
        current = self._board.current()
        in_fault = GaugeMetricFamily(
            "tftrt_sidecar_storage_fault",
            "1 while the area's storage is faulty (incoming missing or emptied, state disk "
            "refusing writes, ...); serving goes on meanwhile.", labels=["area"])
        started = CounterMetricFamily(
            "tftrt_sidecar_storage_faults", "Storage faults that started, per area.",
            labels=["area"])
        for area in FaultArea:
            in_fault.add_metric([area.value], 1.0 if area in current else 0.0)
            started.add_metric([area.value], self._board.started(area))
        yield in_fault
        yield started
