"""The service applies the fleet's operator actions: a replica's real service loop, on its
own serving base and with its place in the fleet, moves out what another replica rolled
back in the shared store, and holds back a model another replica paused."""

from __future__ import annotations

from pathlib import Path

from sidecar.fleet import LeaseBook, SharedDirectoryStore
from sidecar.fleet.actions import FleetRollbacks
from sidecar.fleet.operator_records import OperatorRecords
from sidecar.jobs import FleetContext
from sidecar.service.fleet_upkeep import FleetFeature
from sidecar.service.wiring import Features
from sidecar.state import JobState
from sidecar.state.fleet_controls import FleetControls
from sidecar.tfserving.layout import published_versions
from tests.fleet.conftest import write_version
from tests.service.test_service import quick_settings
from tests.support.pipeline import pipeline_service


def test_the_service_loop_moves_out_what_another_replica_rolled_back(tmp_path: Path) -> None:
    store = tmp_path / "store"
    shared = SharedDirectoryStore(store, LeaseBook("b", 30.0))
    settings = quick_settings(tmp_path / "b")
    settings.paths.incoming_base.mkdir(parents=True)
    for seed, version in enumerate((1000, 2000)):
        write_version(settings.paths.serving_base / "mlp" / str(version), seed=seed)
    records = OperatorRecords(store, "b")
    rollbacks = FleetRollbacks(records, settings.paths.serving_base, refresh_seconds=0.0)
    controls = FleetControls(records, refresh_seconds=0.0)
    fleet = FleetFeature(FleetContext(shared, "2.test", "test-device"), rollbacks)
    with pipeline_service(settings, features=Features(controls=controls, fleet=fleet)) as service:
        service.start()
        assert published_versions(settings.paths.serving_base / "mlp") == [1000, 2000]
        FleetRollbacks(OperatorRecords(store, "a"), tmp_path / "a").record(
            "mlp", 2000, "RollBack through the admin API")
        service.step()
        assert published_versions(settings.paths.serving_base / "mlp") == [1000]
        assert (settings.paths.serving_base / "mlp" / ".rolled-back-2000").is_dir()
        assert "mlp" in settings.paths.model_config_file.read_text()

        FleetControls(OperatorRecords(store, "a")).pause("mlp", "hold")
        landed = settings.paths.incoming_base / "mlp" / "3"
        landed.mkdir(parents=True)
        (landed / "saved_model.pb").write_bytes(b"a job would fail on this at once")
        for _ in range(3):
            assert not service.step(), "no job runs for a model another replica paused"
        job = service.journal.get("mlp", 3000)
        assert job is not None and job.state is JobState.DISCOVERED
