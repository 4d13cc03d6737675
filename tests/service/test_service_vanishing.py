"""A version leaving incoming is withdrawn only once it has stayed gone for the settle time
(issue 24, item 3g), in-process on real directories through the real watcher and service.

``rm -rf incoming/<model>`` removes a model's versions one after another; a scan between
two removals used to withdraw the versions already gone and keep the rest, so TF Serving
fell back to the oldest. The clock is a manual one, so "gone for the settle time" is exact.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from sidecar.base.faults import FaultArea
from sidecar.config import Settings, load_settings
from sidecar.service.loop import SidecarService
from sidecar.service.wiring import Seams
from tests.service.test_service import served
from tests.support.builders import land
from tests.support.clock import ManualClock
from tests.support.pipeline import pipeline_service
from tests.support.serving_poller import ServingPoller

SETTLE = 5.0


def settings_for(root: Path) -> Settings:
    return load_settings({
        "incoming": str(root / "incoming"), "serving": str(root / "serving"),
        "state": str(root / "state"), "engine_cache": str(root / "engine-cache"),
        "model_config_file": str(root / "serving" / "models.config"),
        "settle_seconds": SETTLE, "rescan_interval_seconds": 0.05,
    }, {"TFTRT_SIDECAR_BACKEND": "tensorrt", "TFTRT_SIDECAR_KEEP_VERSIONS": "3"})


def publish_three(service: SidecarService, clock: ManualClock, settings: Settings,
                  model: Path) -> None:
    """Land m/1, m/2, m/3 and run the service until all three are published."""
    for version in (1, 2, 3):
        land(model, settings.paths.incoming_base, "m", version)
    service.start()
    service.step()  # APPEARED
    clock.advance(SETTLE)
    while service.step():  # READY, then one job per step
        pass
    assert served(settings, "m") == [1000, 2000, 3000]


def test_versions_removed_one_at_a_time_are_withdrawn_once_each_stayed_gone_the_settle_time(
    tmp_path: Path, mlp_model: Path
) -> None:
    settings, clock = settings_for(tmp_path), ManualClock()
    incoming = settings.paths.incoming_base / "m"
    poller = ServingPoller(settings.paths.serving_base, poll_seconds=0.05, require_warmup=False)
    with poller, pipeline_service(settings, Seams(monotonic=clock)) as service:
        publish_three(service, clock, settings, mlp_model)
        shutil.rmtree(incoming / "3")
        service.step()
        clock.advance(2)
        shutil.rmtree(incoming / "2")
        service.step()
        clock.advance(SETTLE - 2 - 0.5)  # 3 gone for 4.5 s, 2 for 2.5 s
        service.step()
        assert served(settings, "m") == [1000, 2000, 3000], "nothing withdrawn mid-removal"

        clock.advance(0.5)  # 3 has been gone for the settle time
        service.step()
        assert served(settings, "m") == [1000, 2000]
        clock.advance(2)  # and now 2
        service.step()
        assert served(settings, "m") == [1000]
        assert sorted(p.name for p in (settings.paths.serving_base / "m").iterdir()) == [
            ".withdrawn-2000", ".withdrawn-3000", "1000"]
        assert 'name: "m"' in settings.paths.model_config_file.read_text()
    assert poller.violations == []


def test_a_version_back_within_the_settle_time_never_left(
    tmp_path: Path, mlp_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings, clock = settings_for(tmp_path), ManualClock()
    incoming = settings.paths.incoming_base / "m"
    with caplog.at_level(logging.INFO, logger="sidecar"), \
            pipeline_service(settings, Seams(monotonic=clock)) as service:
        publish_three(service, clock, settings, mlp_model)
        os.rename(incoming / "3", tmp_path / "aside")  # a move away and back, e.g. a re-sync
        service.step()
        clock.advance(SETTLE - 1)
        service.step()
        os.rename(tmp_path / "aside", incoming / "3")
        service.step()
        clock.advance(SETTLE * 3)
        service.step()
        assert served(settings, "m") == [1000, 2000, 3000]
    assert not [r for r in caplog.records if "withdrawn from serving" in r.getMessage()], \
        "never withdrawn (and restored), not even for a moment"


def test_rm_rf_of_a_served_model_withdraws_nothing_and_keeps_serving_the_newest(
    tmp_path: Path, mlp_model: Path
) -> None:
    settings, clock = settings_for(tmp_path), ManualClock()
    incoming = settings.paths.incoming_base / "m"
    with pipeline_service(settings, Seams(monotonic=clock)) as service:
        publish_three(service, clock, settings, mlp_model)
        for version in ("3", "2", "1"):  # rm -rf's order on this filesystem is any order
            shutil.rmtree(incoming / version)
            service.step()
            clock.advance(1)
        incoming.rmdir()
        for _ in range(3):
            service.step()
            clock.advance(SETTLE)
        assert served(settings, "m") == [1000, 2000, 3000], "TF Serving keeps the newest"
        # The whole model gone is a fault to report, not a withdrawal to make.
        assert not service.faults.healthy(FaultArea.INCOMING)
        assert "nothing is withdrawn" in service.faults.current()[FaultArea.INCOMING].message
