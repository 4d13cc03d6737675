"""The service loop reports a step's storage fault under the area its error names, not one
guessed from the file's path: a state directory beside the incoming base, whose path starts
with the incoming base's, that fills up is a state fault, not an incoming one."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sidecar.base.faults import FaultArea
from sidecar.config import load_settings
from tests.support.builders import land
from tests.support.disks import fill_disk, small_tmpfs
from tests.support.pipeline import pipeline_service
from tests.support.waiting import wait_until


def test_a_full_state_disk_beside_incoming_is_a_state_fault(
    tmp_path: Path, mlp_model: Path
) -> None:
    incoming, state = tmp_path / "models", tmp_path / "models-state"
    assert str(state).startswith(str(incoming))
    settings = load_settings({
        "incoming": str(incoming), "serving": str(tmp_path / "serving"),
        "state": str(state), "engine_cache": str(tmp_path / "engines"),
        "model_config_file": str(tmp_path / "serving" / "models.config"),
        "settle_seconds": 0, "rescan_interval_seconds": 0.05, "retry_backoff_seconds": 0.2,
    }, {"TFTRT_SIDECAR_BACKEND": "tensorrt"})  # publishes the original quickly
    incoming.mkdir()
    stop = threading.Event()
    with small_tmpfs(state, "16m"), pipeline_service(settings) as service:
        service.start()
        filler = fill_disk(state)  # the journal cannot record the next version
        land(mlp_model, incoming, "m", 1)
        loop = threading.Thread(target=service.run, args=(stop,))
        loop.start()
        try:
            wait_until(lambda: service.faults.started(FaultArea.STATE) > 0, 30, "a state fault")
            fault = service.faults.current()[FaultArea.STATE].message
            assert "database or disk is full" in fault and str(state) in fault
            assert service.faults.started(FaultArea.INCOMING) == 0, service.faults.current()
            os.unlink(filler)
            wait_until(lambda: service.faults.healthy(FaultArea.STATE), 60, "the fault passed")
            assert loop.is_alive()
        finally:
            stop.set()
            loop.join(timeout=60)
