"""Operator actions are fleet-wide: two replicas, each with its own serving base, state and
admin API (the real server over a socket), share one store directory. A pause, a policy
override or a rollback through replica A's admin API is what replica B's service reads
and applies; a read-only store makes the call fail (UNAVAILABLE, naming the fix) with
nothing changed anywhere."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from sidecar.admin.server import AdminServer, start_admin_server
from sidecar.admin.settings import AdminSettings
from sidecar.admin.sidecar_backend import BackendDependencies, SidecarAdminBackend
from sidecar.config import Address, ModelPolicy
from sidecar.fleet import LeaseBook, SharedDirectoryStore
from sidecar.fleet.actions import KEPT, MOVED, FleetRollbacks
from sidecar.fleet.operator_records import OperatorRecords
from sidecar.publish.published import PublishedModels
from sidecar.state import JobJournal
from sidecar.state.controls import CONTROLS_FILE_NAME
from sidecar.state.fleet_controls import FleetControls
from sidecar.tfserving.layout import published_versions
from tests.fleet.conftest import write_version
from tests.support.command_loop import CommandLoop
from tests.support.disks import small_tmpfs
from tests.support.waiting import wait_until
from tftrt.sidecar.admin.v1 import admin_pb2 as pb
from tftrt.sidecar.admin.v1 import admin_pb2_grpc

MODEL = "mlp"
REFRESH = 2.0


class Clock:
    """A monotonic clock the test moves on, so the replicas' refresh intervals pass at once."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def pass_refresh(self) -> None:
        self.now += REFRESH


@dataclass
class Replica:
    """One replica: serving base, state, its controls and rollbacks on the shared store, and
    (for A) its admin API."""

    name: str
    root: Path
    controls: FleetControls
    rollbacks: FleetRollbacks
    journal: JobJournal
    loop: CommandLoop
    server: AdminServer | None = None

    @property
    def model_dir(self) -> Path:
        return self.root / "serving" / MODEL



def _replica(name: str, root: Path, store: Path, clock: Clock, versions: tuple[int, ...],
             *, admin: bool = False) -> Replica:
    for number, version in enumerate(versions):
        write_version(root / "serving" / MODEL / str(version), seed=number)
    records = OperatorRecords(store, name)
    controls = FleetControls(records, refresh_seconds=REFRESH, monotonic=clock)
    rollbacks = FleetRollbacks(records, root / "serving", refresh_seconds=REFRESH,
                               monotonic=clock)
    journal = JobJournal.open(root / "state", clock=time.time)
    replica = Replica(name, root, controls, rollbacks, journal, CommandLoop())
    if admin:
        backend = SidecarAdminBackend(BackendDependencies(
            journal=journal, published=PublishedModels(root / "serving", refresh_seconds=0.0),
            controls=controls, incoming_base=root / "incoming",
            policy_for=lambda _: ModelPolicy(), submit=replica.loop.commands.convert,
            on_loop=replica.loop.commands.call, fleet_rollbacks=rollbacks))
        replica.server = start_admin_server(AdminSettings(listen=Address("127.0.0.1", 0)), backend)
        backend.mark_ready()
        wait_until(lambda: replica.server is not None and replica.server.serving, 10,
                   f"{name}'s admin server serving")
    return replica


def newest_control(store: Path) -> Path:
    """The file of the newest generation of the model's control record."""
    return max((store / "controls" / MODEL).glob("*.json"), key=lambda path: int(path.stem))


@dataclass
class Fleet:
    store: Path
    clock: Clock
    a: Replica
    b: Replica
    channel: grpc.Channel

    @property
    def stub(self) -> admin_pb2_grpc.SidecarAdminStub:
        return admin_pb2_grpc.SidecarAdminStub(self.channel)


@contextlib.contextmanager
def _fleet(tmp_path: Path, store: Path, b_versions: tuple[int, ...] = (1000, 2000)
           ) -> Iterator[Fleet]:
    """Replica A (admin API, versions 1000 and 2000 of ``mlp``) and B (``b_versions``)."""
    SharedDirectoryStore(store, LeaseBook("a", 30.0))  # the store as wiring opens it
    clock = Clock()
    a = _replica("a", tmp_path / "a", store, clock, (1000, 2000), admin=True)
    b = _replica("b", tmp_path / "b", store, clock, b_versions)
    assert a.server is not None
    try:
        with grpc.insecure_channel(f"127.0.0.1:{a.server.port}") as channel:
            yield Fleet(store, clock, a, b, channel)
    finally:
        a.server.stop(1)
        a.loop.close()
        b.loop.close()
        a.journal.close()
        b.journal.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Replicas A (admin API) and B, both serving versions 1000 and 2000 of ``mlp``."""
    with _fleet(tmp_path, tmp_path / "store") as built:
        yield built


def test_a_pause_through_one_replica_holds_back_every_replica(fleet: Fleet) -> None:
    b = fleet.b
    assert not b.controls.is_paused(MODEL)  # B has read the record: a copy it keeps a while

    paused = fleet.stub.PauseModel(pb.PauseModelRequest(model=MODEL, reason="bad data"),
                                   timeout=10)
    assert paused.paused and paused.reason == "bad data"
    assert fleet.a.controls.is_paused(MODEL), "the replica that was called knows at once"
    assert not b.controls.is_paused(MODEL), "B reads the store again only after its interval"
    fleet.clock.pass_refresh()
    assert b.controls.is_paused(MODEL)
    assert b.controls.get(MODEL).pause_reason == "bad data"
    assert b.controls.models() == [MODEL]
    record = json.loads(newest_control(fleet.store).read_text())
    assert record["set_by"] == "a" and record["paused"] is True
    assert not (fleet.a.root / "state" / CONTROLS_FILE_NAME).exists(), "no local copy"

    fleet.stub.ResumeModel(pb.ResumeModelRequest(model=MODEL), timeout=10)
    fleet.clock.pass_refresh()
    assert not b.controls.is_paused(MODEL) and b.controls.models() == []


def test_a_policy_override_through_one_replica_is_every_replicas_policy(fleet: Fleet) -> None:
    stub = fleet.stub
    stub.SetModelPolicy(pb.SetModelPolicyRequest(
        model=MODEL, overrides=pb.PolicyOverrides(precision="fp16", max_engines=2)), timeout=10)
    fleet.stub.PauseModel(pb.PauseModelRequest(model=MODEL, reason="hold"), timeout=10)
    answer = stub.SetModelPolicy(pb.SetModelPolicyRequest(
        model=MODEL, overrides=pb.PolicyOverrides(keep_versions=3)), timeout=10)
    assert answer.effective.precision == "FP16", "a second call merges, as on one pod"

    fleet.clock.pass_refresh()
    policy = fleet.b.controls.policy_for(MODEL, ModelPolicy())
    assert (policy.precision, policy.max_engines, policy.keep_versions) == ("FP16", 2, 3)
    assert fleet.b.controls.is_paused(MODEL), "setting the policy kept the pause"

    stub.SetModelPolicy(pb.SetModelPolicyRequest(
        model=MODEL, overrides=pb.PolicyOverrides(), clear=True), timeout=10)
    fleet.clock.pass_refresh()
    assert fleet.b.controls.policy_for(MODEL, ModelPolicy()) == ModelPolicy()


def test_a_rollback_through_one_replica_is_applied_by_every_replica(fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    answer = fleet.stub.RollBack(pb.RollBackRequest(model=MODEL, reason="2000 mislabels cats"),
                                 timeout=10)
    assert (answer.rolled_back_version, answer.now_serving_version) == (2000, 1000)
    assert Path(answer.kept_at) == a.model_dir / ".rolled-back-2000"
    assert published_versions(a.model_dir) == [1000]
    assert a.rollbacks.is_rolled_back(MODEL, 2000) and not a.rollbacks.is_rolled_back(MODEL, 1000)
    record = json.loads((fleet.store / "rollbacks" / f"{MODEL}@2000.json").read_text())
    assert (record["by"], record["served"], record["reason"]) == ("a", 2000,
                                                                   "2000 mislabels cats")

    assert published_versions(b.model_dir) == [1000, 2000], "B has not applied it yet"
    [applied] = b.rollbacks.apply()
    assert (applied.rollback.by, applied.moved.version, applied.moved.now_serving) == (
        "a", 2000, 1000)
    assert applied.rollback.reason == "2000 mislabels cats", "B knows why"
    assert published_versions(b.model_dir) == [1000]
    assert (b.model_dir / ".rolled-back-2000" / "saved_model.pb").is_file()
    assert b.rollbacks.is_rolled_back(MODEL, 2000)
    notes = fleet.store / "rollbacks" / "applied" / f"{MODEL}@2000"
    assert {p.name: json.loads(p.read_text())["outcome"] for p in notes.iterdir()} == {
        "a.json": MOVED, "b.json": MOVED}

    assert b.rollbacks.apply() == [], "nothing more until the interval passed"
    fleet.clock.pass_refresh()
    assert b.rollbacks.apply() == [], "and then nothing left to move"

    with pytest.raises(grpc.RpcError) as caught:  # A's only version now: refused, not recorded
        fleet.stub.RollBack(pb.RollBackRequest(model=MODEL), timeout=10)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "only servable version" in caught.value.details()
    assert sorted(p.name for p in (fleet.store / "rollbacks").glob("*.json")) == [
        f"{MODEL}@2000.json"]


def test_a_replica_keeps_serving_its_only_version_and_moves_it_once_another_is_there(
    tmp_path: Path
) -> None:
    with _fleet(tmp_path, tmp_path / "store", b_versions=(2000,)) as fleet:
        b = fleet.b
        fleet.stub.RollBack(pb.RollBackRequest(model=MODEL), timeout=10)
        assert b.rollbacks.apply() == []
        assert published_versions(b.model_dir) == [2000], "B's only version stays served"
        note = fleet.store / "rollbacks" / "applied" / f"{MODEL}@2000" / "b.json"
        kept = json.loads(note.read_text())
        assert kept["outcome"] == KEPT and "only servable version" in kept["why"]

        write_version(b.model_dir / "3000", seed=7)
        fleet.clock.pass_refresh()
        [applied] = b.rollbacks.apply()
        assert (applied.moved.version, applied.moved.now_serving) == (2000, 3000)
        assert published_versions(b.model_dir) == [3000]
        assert json.loads(note.read_text())["outcome"] == MOVED


def test_a_rollback_recorded_twice_keeps_the_first_record_and_a_removed_one_is_undone(
    fleet: Fleet
) -> None:
    first = fleet.a.rollbacks.record(MODEL, 2000, "first")
    again = fleet.b.rollbacks.record(MODEL, 2000, "second")
    assert again == first and again.by == "a"
    # A file that is no rollback record is left out, not trusted (and logged once).
    (fleet.store / "rollbacks" / f"{MODEL}@5000.json").write_text("not json")
    (fleet.store / "rollbacks" / "odd name.json").write_text("{}")
    fleet.clock.pass_refresh()
    assert fleet.b.rollbacks.is_rolled_back(MODEL, 2000)
    assert not fleet.b.rollbacks.is_rolled_back(MODEL, 5000)

    (fleet.store / "rollbacks" / f"{MODEL}@2000.json").unlink()  # an operator undoes it
    fleet.clock.pass_refresh()
    assert not fleet.b.rollbacks.is_rolled_back(MODEL, 2000)


def test_an_unreadable_controls_record_keeps_the_last_one_and_a_change_replaces_it(
    fleet: Fleet
) -> None:
    fleet.stub.PauseModel(pb.PauseModelRequest(model=MODEL, reason="hold"), timeout=10)
    fleet.clock.pass_refresh()
    assert fleet.b.controls.is_paused(MODEL)
    record = newest_control(fleet.store)
    record.write_text(json.dumps({"format": 1, "paused": "yes", "overrides": {"nope": 1}}))
    fleet.clock.pass_refresh()
    assert fleet.b.controls.is_paused(MODEL), "the last controls read stay in force"

    fleet.stub.ResumeModel(pb.ResumeModelRequest(model=MODEL), timeout=10)
    fleet.clock.pass_refresh()
    assert not fleet.b.controls.is_paused(MODEL)
    assert json.loads(newest_control(fleet.store).read_text())["paused"] is False


def test_a_read_only_store_fails_the_call_and_changes_nothing(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "volume", "4m") as volume, _fleet(tmp_path, volume) as fleet:
        stub = fleet.stub
        # The record and the directories exist: the writes themselves are refused.
        stub.PauseModel(pb.PauseModelRequest(model=MODEL, reason="x"), timeout=10)
        stub.ResumeModel(pb.ResumeModelRequest(model=MODEL), timeout=10)
        (volume / "rollbacks").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(volume)], check=True)
        try:
            calls = {
                "pause": lambda: stub.PauseModel(
                    pb.PauseModelRequest(model=MODEL, reason="x"), timeout=10),
                "policy": lambda: stub.SetModelPolicy(pb.SetModelPolicyRequest(
                    model=MODEL, overrides=pb.PolicyOverrides(max_engines=2)), timeout=10),
                "rollback": lambda: stub.RollBack(pb.RollBackRequest(model=MODEL),
                                                  timeout=10),
            }
            for name, call in calls.items():
                with pytest.raises(grpc.RpcError) as caught:
                    call()
                assert caught.value.code() is grpc.StatusCode.UNAVAILABLE, name
                details = caught.value.details()
                assert "Read-only file system" in details, details
                assert "mount the volume holding" in details, details
            a = fleet.a
            assert not a.controls.is_paused(MODEL)
            assert a.controls.policy_for(MODEL, ModelPolicy()) == ModelPolicy()
            assert published_versions(a.model_dir) == [1000, 2000], "nothing rolled back"
            assert sorted(p.name for p in a.model_dir.iterdir()) == ["1000", "2000"]
            assert not (a.root / "state" / CONTROLS_FILE_NAME).exists()
            assert not a.rollbacks.is_rolled_back(MODEL, 2000)
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(volume)], check=True)
