"""Fixtures of the job tests: real SavedModels built once, and a pipeline on temporary dirs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sidecar.config import ModelPolicy
from sidecar.jobs import (
    ConverterFactory,
    JobDependencies,
    JobResult,
    ShapeSource,
    default_converter_factory,
    run_version_job,
)
from sidecar.publish import VersionPublisher
from sidecar.state import JobJournal
from sidecar.tfserving import numbering
from tests.support.builders import RecordingObserver, corrupt_copy, land, noisy_model


@pytest.fixture(scope="session")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model that adds random noise to its output (x[?,16] -> y[?,8])."""
    return noisy_model(tmp_path_factory.mktemp("noisy") / "model")


@pytest.fixture(scope="session")
def corrupt(tmp_path_factory: pytest.TempPathFactory, mlp_model: Path) -> Path:
    """The MLP with a garbage saved_model.pb."""
    return corrupt_copy(mlp_model, tmp_path_factory.mktemp("corrupt") / "model")


ONE_BUILD = ModelPolicy(serve_original_first=False)
"""The default policy, but building a version as one job at one served number: what most
job tests exercise (tests/jobs/test_original_first.py serves the original first)."""


@dataclass
class Pipeline:
    """Real journal, publisher and directories for running jobs by hand.

    Versions land under their INCOMING number; jobs and the serving base use SERVED
    numbers (:mod:`sidecar.tfserving.numbering`): ``land(..., 3)`` queues served 3000.
    """

    root: Path
    journal: JobJournal
    observer: RecordingObserver = field(default_factory=RecordingObserver)
    steps: list[str] = field(default_factory=list)
    shape_source: ShapeSource | None = None

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def serving(self) -> Path:
        return self.root / "serving"

    @property
    def engine_cache(self) -> Path:
        return self.root / "engine-cache"

    def publisher(self) -> VersionPublisher:
        return VersionPublisher(self.serving, checkpoint=self.steps.append)

    def land(self, source: Path, model: str, incoming: int) -> Path:
        """Land ``source`` as incoming/<model>/<incoming> and discover its first build,
        ``served_version(incoming)``, in the journal; return the incoming directory."""
        path = land(source, self.incoming, model, incoming)
        self.journal.discover(model, numbering.served_version(incoming))
        return path

    def run(self, model: str, served: int, policy: ModelPolicy | None = None,
            *, checkpoint_hook: object = None,
            converter_factory: ConverterFactory = default_converter_factory) -> JobResult:
        """Run the job of SERVED version ``served`` (it reads incoming ``served // 1000``),
        calling ``checkpoint_hook`` at each job and publish step."""
        def checkpoint(step: str) -> None:
            self.steps.append(step)
            if callable(checkpoint_hook):
                checkpoint_hook(step)

        deps = JobDependencies(
            journal=self.journal,
            publisher=VersionPublisher(self.serving, checkpoint=checkpoint),
            incoming_base=self.incoming,
            engine_cache_dir=self.engine_cache,
            shape_source=self.shape_source,
            observer=self.observer,
            checkpoint=checkpoint,
            converter_factory=converter_factory,
        )
        return run_version_job(deps, model, served, policy or ONE_BUILD)


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    """A fresh pipeline under ``tmp_path``."""
    journal = JobJournal.open(tmp_path / "state", clock=time.time)
    try:
        yield Pipeline(tmp_path, journal)
    finally:
        journal.close()
