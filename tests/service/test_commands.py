"""The service loop is the serving base's one writer: what the admin API asks for (a
conversion, a rollback) is queued as a command and runs on the loop's thread, between jobs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sidecar.admin.backend import ConversionRequest
from sidecar.admin.errors import NotReadyError
from sidecar.config import ModelPolicy, load_settings
from sidecar.config.overrides import PolicyOverrides
from sidecar.jobs import JobResult
from sidecar.publish import RolledBack, roll_back_newest
from sidecar.service.commands import LoopCommands
from sidecar.service.loop import SidecarService
from sidecar.service.wiring import Features, Seams
from tests.support.builders import land
from tests.support.pipeline import pipeline_service
from tests.support.serving_poller import ServingPoller
from tests.support.waiting import wait_until


def _request(version: int) -> ConversionRequest:
    return ConversionRequest("m", version, ModelPolicy(), PolicyOverrides(), rebuild=False)


def _refused(request: ConversionRequest) -> JobResult:
    raise ValueError(f"no conversion of {request.version} here")


def test_commands_run_in_order_on_the_thread_that_runs_them() -> None:
    commands = LoopCommands()
    ran: list[str] = []

    def where() -> str:
        ran.append(threading.current_thread().name)
        return "one"

    first = commands.call(where)
    cancelled = commands.call(lambda: ran.append("cancelled"))
    conversion = commands.convert(_request(7))
    failing = commands.call(lambda: 1 / 0)
    assert cancelled.cancel()
    worker = threading.Thread(target=lambda: [commands.run_next(_refused) for _ in range(4)],
                              name="the-loop")
    worker.start()
    worker.join(10)
    assert first.result(0) == "one" and ran == ["the-loop"]  # the cancelled one never ran
    with pytest.raises(CancelledError):
        cancelled.result(0)
    with pytest.raises(ValueError, match="no conversion of 7 here"):
        conversion.result(0)
    with pytest.raises(ZeroDivisionError):
        failing.result(0)
    assert not commands.run_next(_refused)  # nothing left


def test_a_stopped_loop_fails_what_waits_and_takes_commands_again_once_started() -> None:
    commands = LoopCommands()
    queued = commands.call(lambda: "never")
    commands.stop()
    late = commands.call(lambda: "never either")
    for future in (queued, late):
        with pytest.raises(NotReadyError, match="the sidecar is stopping") as caught:
            future.result(0)
        assert caught.value.retryable and "retry once the sidecar is back" in str(caught.value)
    commands.start()
    again = commands.call(lambda: "ran")
    assert commands.run_next(_refused) and again.result(0) == "ran"


@dataclass
class PublishPause:
    """A job checkpoint: while ``pausing`` is set, a publish stops at its "staged" step
    (setting ``staged``) until ``release`` is set."""

    pausing: threading.Event = field(default_factory=threading.Event)
    staged: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def checkpoint(self, step: str) -> None:
        if step == "staged" and self.pausing.is_set():
            self.staged.set()
            self.release.wait(120)


@dataclass
class Running:
    """A service running its loop on a thread, its publishes under ``pause``."""

    service: SidecarService
    commands: LoopCommands
    pause: PublishPause
    incoming: Path
    serving: Path


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    settings = load_settings({
        "incoming": str(tmp_path / "incoming"), "serving": str(tmp_path / "serving"),
        "state": str(tmp_path / "state"), "engine_cache": str(tmp_path / "engine-cache"),
        "model_config_file": str(tmp_path / "serving" / "models.config"),
        "settle_seconds": 0.2, "rescan_interval_seconds": 0.05,
    }, {"TFTRT_SIDECAR_BACKEND": "tensorrt", "TFTRT_SIDECAR_KEEP_VERSIONS": "3"})
    commands, pause, stop = LoopCommands(), PublishPause(), threading.Event()
    with pipeline_service(settings, Seams(checkpoint=pause.checkpoint),
                          Features(commands=commands)) as service:
        loop = threading.Thread(target=service.run, args=(stop,), name="service-loop")
        loop.start()
        try:
            yield Running(service, commands, pause, settings.paths.incoming_base,
                          settings.paths.serving_base)
        finally:
            pause.release.set()
            stop.set()
            loop.join(120)


def test_a_rollback_asked_for_while_a_version_publishes_runs_once_it_is_published(
    mlp_model: Path, running: Running,
) -> None:
    with ServingPoller(running.serving, poll_seconds=0.05, require_warmup=False) as poller:
        for version in (1, 2):
            land(mlp_model, running.incoming, "m", version)
        wait_until(lambda: running.service.publisher.published_versions("m"), 300,
                   "m/1000 and m/2000 published", done=lambda seen: seen == [1000, 2000])
        running.pause.pausing.set()
        land(mlp_model, running.incoming, "m", 3)
        assert running.pause.staged.wait(300), "the publish of m/3000 never reached its staged step"
        rolled = running.commands.call(lambda: roll_back_newest(running.serving / "m"))
        # The loop is inside the publish: the rollback waits for it and does not interleave
        # (run at once, it would take 2000 away and then 3000 would be published).
        assert not rolled.done()
        running.pause.release.set()
        result: RolledBack = rolled.result(120)
    assert (result.version, result.now_serving) == (3000, 2000)
    assert running.service.publisher.published_versions("m") == [1000, 2000]
    assert poller.violations == []
