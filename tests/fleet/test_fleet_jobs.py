"""Version jobs of two replicas sharing one store and one incoming base: the real job, the
real converter, real SavedModels, the real shared-directory store on temporary dirs."""

from __future__ import annotations

import itertools
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.config import ModelPolicy
from sidecar.fleet import Held, Lease, LeaseBook, SharedDirectoryStore
from sidecar.fleet.actions import FleetRollbacks
from sidecar.fleet.lease import MAX_REJECTIONS, list_key, read_outcome
from sidecar.fleet.operator_records import OperatorRecords
from sidecar.jobs import FleetContext, JobDependencies, JobResult, run_version_job
from sidecar.jobs.session_model import SessionModel
from sidecar.publish import VersionPublisher
from sidecar.state import Flavour, JobJournal, JobState
from sidecar.tfserving import numbering
from tests.fleet.conftest import tree_bytes, write_version
from tests.fleet.replicas import outcomes
from tests.support.builders import land
from tests.support.clock import ManualClock

TF = "2.21.0"
SLUG = "cpu-test"
SERVED = numbering.served_version(1)
ONE_BUILD = ModelPolicy(serve_original_first=False)
"""The default policy building each version as one key, at its first served number (what
most tests here exercise; the original served first has its own test)."""


@dataclass
class Replica:
    """One replica's own journal, serving base and engine cache, on the shared store."""

    root: Path
    name: str
    store: SharedDirectoryStore
    journal: JobJournal

    @property
    def serving(self) -> Path:
        return self.root / self.name / "serving"

    def run(self, incoming: Path, served: int = SERVED, *, checkpoint: object = None,
            policy: ModelPolicy = ONE_BUILD) -> JobResult:
        self.journal.discover("mlp", served)
        step = checkpoint if callable(checkpoint) else (lambda name: None)
        rollbacks = FleetRollbacks(OperatorRecords(self.store.root, self.name), self.serving,
                                   refresh_seconds=0.0)
        deps = JobDependencies(
            journal=self.journal, publisher=VersionPublisher(self.serving, checkpoint=step),
            incoming_base=incoming, engine_cache_dir=self.root / self.name / "engines",
            checkpoint=step, fleet=FleetContext(self.store, TF, SLUG),
            is_rolled_back=rollbacks.is_rolled_back)
        return run_version_job(deps, "mlp", served, policy)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Path, ManualClock, list[Replica]]]:
    """Incoming with the MLP's version 1, and two replicas "a" and "b" (60 s leases, judged
    on a clock the test moves)."""
    clock = ManualClock()  # how long a replica saw a lease stand
    replicas = []
    for name in ("a", "b"):
        book = LeaseBook(name, 60.0, clock=clock)
        journal = JobJournal.open(tmp_path / name / "state", clock=time.time)
        replicas.append(Replica(tmp_path, name, SharedDirectoryStore(tmp_path / "store", book),
                                journal))
    try:
        yield tmp_path / "incoming", clock, replicas
    finally:
        for replica in replicas:
            replica.journal.close()


def stages(replica: Replica) -> list[JobState]:
    return [t.to_state for t in replica.journal.history("mlp", SERVED)]


def test_one_replica_builds_the_other_installs_the_same_bytes(
    fleet: tuple[Path, ManualClock, list[Replica]], mlp_model: Path
) -> None:
    incoming, _, (a, b) = fleet
    land(mlp_model, incoming, "mlp", 1)

    built = a.run(incoming)
    installed = b.run(incoming)

    assert built.state is JobState.PUBLISHED, built.reason
    assert installed.state is JobState.PUBLISHED, installed.reason
    assert built.origin is not None and installed.origin is not None
    assert (built.origin.built_by, built.origin.installed) == ("a", False)
    assert (installed.origin.built_by, installed.origin.installed) == ("a", True)
    # b never converted or built: it went from discovered straight to verifying.
    assert stages(b) == [JobState.DISCOVERED, JobState.VERIFYING, JobState.PUBLISHED]
    assert JobState.BUILDING in stages(a)
    job = b.journal.get("mlp", SERVED)
    assert job is not None and (job.built_by, job.installed) == ("a", True)
    assert job.flavour is built.flavour is Flavour.CONVERTED
    version = f"mlp/{SERVED}"
    assert tree_bytes(b.serving / version) == tree_bytes(a.serving / version)
    assert (b.serving / version / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_each_replica_serves_the_original_itself_and_the_fleet_converts_it_once(
    fleet: tuple[Path, ManualClock, list[Replica]], mlp_model: Path
) -> None:
    converted = numbering.converted_form(SERVED)
    incoming, _, (a, b) = fleet
    land(mlp_model, incoming, "mlp", 1)

    for replica in (a, b):  # the original needs no conversion: no claim, no store
        first = replica.run(incoming, policy=ModelPolicy())
        assert first.state is JobState.PUBLISHED and first.flavour is Flavour.ORIGINAL
        assert first.origin is None and first.converted_as == converted
    context = FleetContext(a.store, TF, SLUG)
    assert not (a.store.root / context.key("mlp", SERVED).path).exists()  # not in the store

    built = a.run(incoming, converted, policy=ModelPolicy())
    installed = b.run(incoming, converted, policy=ModelPolicy())
    assert built.flavour is installed.flavour is Flavour.CONVERTED, installed.reason
    assert built.origin is not None and installed.origin is not None
    assert (built.origin.installed, installed.origin.built_by, installed.origin.installed) == (
        False, "a", True)
    version = f"mlp/{converted}"
    assert tree_bytes(b.serving / version) == tree_bytes(a.serving / version)
    for replica in (a, b):
        assert VersionPublisher(replica.serving).published_versions("mlp") == [SERVED,
                                                                               converted]


def test_the_fleet_never_converts_an_original_it_rolled_back(
    fleet: tuple[Path, ManualClock, list[Replica]], mlp_model: Path
) -> None:
    incoming, _, (a, b) = fleet
    land(mlp_model, incoming, "mlp", 1)
    assert b.run(incoming, policy=ModelPolicy()).state is JobState.PUBLISHED
    OperatorRecords(a.store.root, "a").record_rollback("mlp", SERVED, "a bad model")

    skipped = b.run(incoming, numbering.converted_form(SERVED), policy=ModelPolicy())
    assert skipped.state is JobState.SKIPPED, skipped.reason
    assert "has since been rolled back or withdrawn" in (skipped.reason or "")


def test_a_replica_waits_while_another_holds_the_key(
    fleet: tuple[Path, ManualClock, list[Replica]], mlp_model: Path
) -> None:
    incoming, _, (a, b) = fleet
    land(mlp_model, incoming, "mlp", 1)
    lease = a.store.claim(FleetContext(a.store, TF, SLUG).key("mlp", SERVED))
    assert isinstance(lease, Lease)

    waiting = b.run(incoming)

    assert waiting.state is JobState.DISCOVERED and waiting.retry_in is not None
    assert 0 < waiting.retry_in <= 60.0
    assert "replica 'a' is building it" in (waiting.reason or "")
    job = b.journal.get("mlp", SERVED)
    assert job is not None and job.state is JobState.DISCOVERED
    assert not (b.serving / "mlp" / str(SERVED)).exists()
    a.store.release(lease)
    assert b.run(incoming).state is JobState.PUBLISHED  # released: b builds it at once


def test_a_holder_that_lost_its_lease_publishes_nothing_and_installs_the_winner(
    fleet: tuple[Path, ManualClock, list[Replica]], mlp_model: Path
) -> None:
    incoming, clock, (a, b) = fleet
    land(mlp_model, incoming, "mlp", 1)
    key = FleetContext(b.store, TF, SLUG).key("mlp", SERVED)
    taken = itertools.count()

    def b_takes_over(step: str) -> None:
        # While a builds, b watches a's lease stand still for longer than the lease (as if
        # a were paused) and takes it over.
        if step == "job-saved" and next(taken) == 0:
            assert isinstance(b.store.claim(key), Held)
            clock.advance(61.0)
            b_lease = b.store.claim(key)
            assert isinstance(b_lease, Lease), b_lease
            b.store.release(b_lease)

    late = a.run(incoming, checkpoint=b_takes_over)

    assert late.state is JobState.DISCOVERED and late.retry_in == 0.0
    assert "taken over by replica 'b'" in (late.reason or "")
    assert not (a.serving / "mlp" / str(SERVED)).exists()
    directory = b.store.key_dir(key)
    outcomes = {g: read_outcome(directory, g)[0].value  # type: ignore[index]
                for g in list_key(directory).outcomes}
    assert outcomes == {1: "revoked", 2: "released"}
    assert not [p for p in directory.iterdir() if p.name.startswith("artifact.")]

    assert b.run(incoming).state is JobState.PUBLISHED
    again = a.run(incoming)
    assert again.state is JobState.PUBLISHED and again.origin is not None
    assert (again.origin.built_by, again.origin.installed) == ("b", True)
    assert tree_bytes(a.serving / "mlp" / str(SERVED)) == tree_bytes(
        b.serving / "mlp" / str(SERVED))


def test_a_version_the_fleet_rolled_back_is_never_installed(
    fleet: tuple[Path, ManualClock, list[Replica]], mlp_model: Path
) -> None:
    incoming, _, (a, b) = fleet
    land(mlp_model, incoming, "mlp", 1)
    assert a.run(incoming).state is JobState.PUBLISHED
    FleetRollbacks(OperatorRecords(a.store.root, "a"), a.serving).record(
        "mlp", SERVED, "RollBack through the admin API")

    skipped = b.run(incoming)

    assert skipped.state is JobState.SKIPPED
    assert "rolled back fleet-wide" in (skipped.reason or "")
    assert not (b.serving / "mlp" / str(SERVED)).exists()


def _garbage_model(artifact: Path) -> None:
    (artifact / "version" / "saved_model.pb").write_bytes(b"not a SavedModel")


def _one_byte_of_the_variables(artifact: Path) -> None:
    (data,) = (artifact / "version" / "variables").glob("variables.data-*")
    content = bytearray(data.read_bytes())
    content[len(content) // 2] ^= 0x01  # still loads: only the manifest tells
    data.write_bytes(bytes(content))


def _garbage_model_before_manifests(artifact: Path) -> None:
    record = json.loads((artifact / "artifact.json").read_text())
    del record["manifest"]  # as an artifact completed by the previous release
    (artifact / "artifact.json").write_text(json.dumps(record))
    _garbage_model(artifact)


def _unreadable_record(artifact: Path) -> None:
    (artifact / "artifact.json").write_bytes(b"\x00\x01 not json")


@pytest.mark.parametrize(("damage", "named"), [
    (_garbage_model, "version/saved_model.pb holds 16 bytes"),
    (_one_byte_of_the_variables, "differs from the bytes its builder wrote"),
    (_garbage_model_before_manifests, "does not load through the TF1 Session loader"),
    (_unreadable_record, "artifact.json is missing or no JSON object"),
])
def test_a_damaged_artifact_is_refused_built_again_under_a_new_lease_and_installed(
    fleet: tuple[Path, ManualClock, list[Replica]], mlp_model: Path,
    damage: Callable[[Path], None], named: str
) -> None:
    incoming, _, (a, b) = fleet
    land(mlp_model, incoming, "mlp", 1)
    assert a.run(incoming).state is JobState.PUBLISHED
    key_dir = a.store.key_dir(FleetContext(a.store, TF, SLUG).key("mlp", SERVED))
    (artifact,) = key_dir.glob("artifact.1.*")
    damage(artifact)

    refused = b.run(incoming)

    assert refused.state is JobState.DISCOVERED and refused.retry_in == 0.0  # claim again
    assert named in (refused.reason or "") and "is damaged" in (refused.reason or "")
    assert not (b.serving / "mlp" / str(SERVED)).exists()  # nothing of it published
    job = b.journal.get("mlp", SERVED)
    assert job is not None and job.state is JobState.DISCOVERED and named in (job.reason or "")
    assert stages(b) == [JobState.DISCOVERED, JobState.VERIFYING, JobState.DISCOVERED]
    assert b.store.refused_artifacts == {"mlp": 1}
    assert (key_dir / "rejected.1").is_file()

    rebuilt = b.run(incoming)  # the job's retry: the key is claimable again, and b builds

    assert rebuilt.state is JobState.PUBLISHED, rebuilt.reason
    assert rebuilt.origin is not None and not rebuilt.origin.installed
    assert outcomes(key_dir) == {1: "complete", 2: "complete"}
    with JobJournal.open(a.root / "c" / "state", clock=time.time) as journal:
        c = Replica(a.root, "c", SharedDirectoryStore(a.store.root, LeaseBook("c", 60.0)),
                    journal)
        installed = c.run(incoming)
        assert installed.state is JobState.PUBLISHED, installed.reason
        assert installed.origin is not None
        assert (installed.origin.built_by, installed.origin.installed) == ("b", True)
    version = f"mlp/{SERVED}"
    assert tree_bytes(c.serving / version) == tree_bytes(b.serving / version)
    for member in (a, b, c):  # every replica serves a model that loads
        with SessionModel.open(member.serving / version, ["serve"]) as model:
            assert model.signature_keys()


def test_artifacts_refused_too_often_fail_the_job_retryably_until_the_key_is_removed(
    fleet: tuple[Path, ManualClock, list[Replica]], mlp_model: Path
) -> None:
    """The fix the error prints is every step: remove the key's directory; the job's own
    retry (as the service runs it, journal.restart then the job) then builds it."""
    incoming, _, (a, b) = fleet
    land(mlp_model, incoming, "mlp", 1)
    key = FleetContext(a.store, TF, SLUG).key("mlp", SERVED)
    key_dir = a.store.key_dir(key)
    for generation in range(1, MAX_REJECTIONS + 2):
        lease = a.store.claim(key)
        assert isinstance(lease, Lease) and lease.generation == generation
        a.store.complete(key, lease, write_version(a.root / f"junk{generation}"),
                         flavour="converted", reason=None)
        if generation <= MAX_REJECTIONS:
            assert a.store.reject(key, generation, "test")

    failed = b.run(incoming)

    assert failed.state is JobState.FAILED
    reason = failed.reason or ""
    assert f"refused this key's artifacts {MAX_REJECTIONS} times" in reason
    assert f"remove the key's directory {key.path} from the fleet store" in reason
    assert "the sidecar retries it by itself in" in reason
    job = b.journal.get("mlp", SERVED)
    assert job is not None and job.retry_at is not None  # retried: the state does not stick
    assert not (key_dir / f"rejected.{MAX_REJECTIONS + 1}").exists()

    shutil.rmtree(key_dir)
    b.journal.restart("mlp", SERVED, reason="retry")
    recovered = b.run(incoming)

    assert recovered.state is JobState.PUBLISHED, recovered.reason
    assert outcomes(key_dir) == {1: "complete"}
