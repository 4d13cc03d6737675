"""The service loop in-process when the state disk fills up in the middle of a job (a real
tmpfs): the loop lives, reports the fault, and once space is back settles the broken job
and publishes it, with the journal saying what happened."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sidecar.base.faults import FaultArea
from sidecar.config import load_settings
from sidecar.publish import VersionPublisher
from sidecar.service.wiring import Seams
from sidecar.state import JobState
from tests.support.builders import land
from tests.support.disks import fill_disk, small_tmpfs
from tests.support.pipeline import pipeline_service
from tests.support.waiting import wait_until


def test_a_state_disk_filling_up_mid_job_is_ridden_out_and_the_job_published(
    tmp_path: Path, mlp_model: Path
) -> None:
    state = tmp_path / "state"
    settings = load_settings({
        "incoming": str(tmp_path / "incoming"), "serving": str(tmp_path / "serving"),
        "state": str(state), "engine_cache": str(tmp_path / "engines"),
        "model_config_file": str(tmp_path / "serving" / "models.config"),
        "settle_seconds": 0, "rescan_interval_seconds": 0.05, "retry_backoff_seconds": 0.2,
    }, {"TFTRT_SIDECAR_BACKEND": "tensorrt"})  # publishes the original quickly
    fillers: list[Path] = []

    def fill_when_building(step: str) -> None:
        if step == "job-verifying" and not fillers:  # the next journal write needs room
            fillers.append(fill_disk(state))

    land(mlp_model, settings.paths.incoming_base, "m", 1)
    stop = threading.Event()
    with small_tmpfs(state, "4m"), \
            pipeline_service(settings, Seams(checkpoint=fill_when_building)) as service:
        loop = threading.Thread(target=service.run, args=(stop,))
        loop.start()
        try:
            wait_until(lambda: not service.faults.healthy(FaultArea.STATE), 60, "a state fault")
            fault = service.faults.current()[FaultArea.STATE].message
            assert "database or disk is full" in fault and "free space" in fault
            assert loop.is_alive()
            os.unlink(fillers[0])
            wait_until(lambda: VersionPublisher(settings.paths.serving_base).published_versions("m")
                       == [1000], 60, "m/1000 published once space is back")
            wait_until(lambda: service.faults.healthy(FaultArea.STATE), 30, "the fault passed")
        finally:
            stop.set()
            loop.join(timeout=60)
        job = service.journal.get("m", 1000)
        reasons = [t.reason or "" for t in service.journal.history("m", 1000)]
    assert job is not None and job.state is JobState.PUBLISHED and job.attempts == 2
    assert any("database or disk is full" in reason and "while the job was verifying" in reason
               for reason in reasons), reasons
    assert service.faults.started(FaultArea.STATE) == 1
    served = settings.paths.serving_base / "m"
    assert [p for p in served.iterdir() if p.name.startswith(".")] == []


def test_an_incoming_base_missing_at_start_is_a_fault_the_service_waits_out(
    tmp_path: Path, mlp_model: Path
) -> None:
    settings = load_settings({
        "incoming": str(tmp_path / "incoming"), "serving": str(tmp_path / "serving"),
        "state": str(tmp_path / "state"), "engine_cache": str(tmp_path / "engines"),
        "model_config_file": str(tmp_path / "serving" / "models.config"),
        "settle_seconds": 0, "rescan_interval_seconds": 0.05,
    }, {"TFTRT_SIDECAR_BACKEND": "tensorrt"})
    stop = threading.Event()
    with pipeline_service(settings) as service:
        loop = threading.Thread(target=service.run, args=(stop,))
        loop.start()
        try:
            wait_until(lambda: not service.faults.healthy(FaultArea.INCOMING), 30, "the fault")
            assert "is missing" in service.faults.current()[FaultArea.INCOMING].message
            land(mlp_model, settings.paths.incoming_base, "m", 1)  # the volume arrives late
            wait_until(lambda: VersionPublisher(settings.paths.serving_base).published_versions("m")
                       == [1000], 60, "m/1000 published")
            assert service.faults.healthy(FaultArea.INCOMING) and loop.is_alive()
        finally:
            stop.set()
            loop.join(timeout=60)


def test_a_served_models_directory_missing_across_a_restart_stays_a_fault(
    tmp_path: Path, mlp_model: Path
) -> None:
    settings = load_settings({
        "incoming": str(tmp_path / "incoming"), "serving": str(tmp_path / "serving"),
        "state": str(tmp_path / "state"), "engine_cache": str(tmp_path / "engines"),
        "model_config_file": str(tmp_path / "serving" / "models.config"),
        "settle_seconds": 0, "rescan_interval_seconds": 0.05, "once": True,
    }, {"TFTRT_SIDECAR_BACKEND": "tensorrt"})
    for version in (1, 2):
        land(mlp_model, settings.paths.incoming_base, "m", version)
    land(mlp_model, settings.paths.incoming_base, "other", 1)
    with pipeline_service(settings) as service:
        service.run()
    os.rename(settings.paths.incoming_base / "m", tmp_path / "m-away")  # while the sidecar is down
    with pipeline_service(settings) as service:
        assert service.start().withdrawn == ()
        for _ in range(3):  # the first scans know what was there: still a fault
            service.step()
            assert not service.faults.healthy(FaultArea.INCOMING)
        assert VersionPublisher(settings.paths.serving_base).published_versions("m") == [1000, 2000]
        os.rename(tmp_path / "m-away", settings.paths.incoming_base / "m")
        service.step()
        assert service.faults.healthy(FaultArea.INCOMING)
