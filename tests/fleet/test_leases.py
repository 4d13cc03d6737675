"""Leases between real processes on one store: one winner, takeover after a SIGKILL, and a
holder paused past its lease (SIGSTOP) that resumes and publishes nothing."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from sidecar.fleet import (
    Completed,
    Held,
    Lease,
    LeaseBook,
    LeaseKeeper,
    LeaseLostError,
    SharedDirectoryStore,
)
from tests.fleet.conftest import LEASE, LONG_LEASE, Worker, open_store, tree_bytes, write_version
from tests.fleet.fleet_worker import KEY
from tests.support.waiting import wait_until


def _take_over(store_dir: Path, replica: str) -> tuple[Lease, float]:
    """Claim the test key as ``replica`` until the lease is this process's; the lease and
    the seconds it took."""
    store = open_store(store_dir, replica)
    started = time.monotonic()
    won: list[Lease] = []

    def claimed() -> bool:
        claim = store.claim(KEY)
        assert not isinstance(claim, Completed), claim
        if isinstance(claim, Lease):
            won.append(claim)
        return bool(won)

    wait_until(claimed, 10, f"{replica} takes the key over")
    return won[0], time.monotonic() - started


def test_racing_processes_claim_one_key_and_exactly_one_wins(
    tmp_path: Path, workers: list[Worker]
) -> None:
    source = write_version(tmp_path / "version")
    go, resume = tmp_path / "go", tmp_path / "resume"
    for number in range(6):
        workers.append(Worker(tmp_path / "store", f"replica-{number}", source, go=go,
                              hold_at="claimed", resume=resume))
    for worker in workers:
        worker.expect("ready")
    go.touch()
    results = {worker.replica: worker.expect("claimed", "held") for worker in workers}
    winners = [replica for replica, event in results.items() if event["event"] == "claimed"]
    assert len(winners) == 1, results
    assert {event.get("by") for event in results.values() if event["event"] == "held"} == {
        winners[0]}
    resume.touch()
    winner = next(worker for worker in workers if worker.replica == winners[0])
    winner.expect("holding")
    winner.expect("resumed")
    winner.expect("completed")
    assert all(worker.finish() == 0 for worker in workers)
    record = open_store(tmp_path / "store", "reader").artifact(KEY)
    assert record is not None and record.built_by == winners[0] and record.generation == 1


@pytest.mark.parametrize("killed_at", ["claimed", "artifact-staged"])
def test_a_holder_killed_mid_work_is_taken_over_once_its_lease_expires(
    tmp_path: Path, workers: list[Worker], killed_at: str
) -> None:
    """Killed before its work, or with its artifact written but not complete (which the
    taker's completion then sweeps away)."""
    source = write_version(tmp_path / "version", seed=1)
    workers.append(Worker(tmp_path / "store", "doomed", source, hold_at=killed_at,
                          resume=tmp_path / "never"))
    workers[0].expect("ready")
    workers[0].expect("claimed")
    workers[0].expect("holding")
    taker = open_store(tmp_path / "store", "taker")
    assert isinstance(taker.claim(KEY), Held)  # renewed and unexpired: not taken
    workers[0].signal(signal.SIGKILL)
    assert workers[0].finish() == -signal.SIGKILL

    lease, waited = _take_over(tmp_path / "store", "taker")
    assert lease.generation == 2 and lease.took_over_from == "doomed"
    assert waited >= LEASE  # not before the holder's lease ran out unrenewed
    mine = write_version(tmp_path / "mine", seed=2)
    record = open_store(tmp_path / "store", "taker").complete(
        KEY, lease, mine, flavour="original", reason="test")
    assert record.built_by == "taker" and record.generation == 2
    copied = tmp_path / "copied"
    copied.mkdir()
    open_store(tmp_path / "store", "reader").copy_artifact(KEY, copied)
    assert tree_bytes(copied) == tree_bytes(mine)
    assert [path.name.split(".")[1] for path in (tmp_path / "store" / KEY.path).glob(
        "artifact.*")] == ["2"]  # the dead holder's attempt is gone


def test_replicas_racing_to_take_over_a_dead_holders_key_take_it_once(
    tmp_path: Path, workers: list[Worker]
) -> None:
    store_dir, go = tmp_path / "store", tmp_path / "go"
    doomed = Worker(store_dir, "doomed", write_version(tmp_path / "version"),
                    hold_at="claimed", resume=tmp_path / "never")
    workers.append(doomed)
    doomed.expect("ready")
    doomed.expect("claimed")
    doomed.expect("holding")
    doomed.signal(signal.SIGKILL)
    # The takers' own leases are long: a winner slowed by a busy machine (its fsyncs, its
    # renewals) is then not taken over in turn, which would be right but not this test.
    takers = [Worker(store_dir, f"taker-{n}", write_version(tmp_path / f"v{n}", seed=n), go=go,
                     until_decided=True, lease=LONG_LEASE) for n in range(4)]
    workers.extend(takers)
    for taker in takers:
        taker.expect("ready")
    go.touch()
    results = {taker.replica: taker.expect("claimed", "completed-by") for taker in takers}
    winners = [name for name, event in results.items() if event["event"] == "claimed"]
    assert len(winners) == 1 and results[winners[0]]["generation"] == 2, results
    assert {event.get("by") for name, event in results.items() if name not in winners} == {
        winners[0]}
    record = open_store(store_dir, "reader").artifact(KEY)
    assert record is not None and record.built_by == winners[0] and record.generation == 2


def test_a_revoked_holder_never_gets_its_generation_back(tmp_path: Path) -> None:
    """With a manual clock: the takeover comes exactly one unrenewed lease after the taker
    first saw the lease; the revoked holder can neither renew, nor complete, nor claim the
    key again while the taker renews."""
    now = [100.0]
    holder = SharedDirectoryStore(tmp_path / "store", LeaseBook("holder", 10.0))
    taker = SharedDirectoryStore(tmp_path / "store", LeaseBook("taker", 10.0,
                                                               clock=lambda: now[0]))
    first = holder.claim(KEY)
    assert isinstance(first, Lease)
    assert taker.claim(KEY) == Held("holder", 1, 10.0)
    now[0] += 9.9
    assert isinstance(taker.claim(KEY), Held)
    holder.renew(first)  # a renewal restarts the taker's wait
    now[0] += 9.9
    assert taker.claim(KEY) == Held("holder", 1, 10.0)
    now[0] += 10.0
    second = taker.claim(KEY)
    assert isinstance(second, Lease) and second.generation == 2
    with pytest.raises(LeaseLostError, match="taken over by replica 'taker'"):
        holder.renew(first)
    with pytest.raises(LeaseLostError):
        holder.complete(KEY, first, write_version(tmp_path / "late"), flavour="converted",
                        reason=None)
    again = holder.claim(KEY)
    assert isinstance(again, Held) and again.replica == "taker" and again.generation == 2


@pytest.mark.parametrize("paused_at", ["claimed", "artifact-staged"])
def test_a_holder_paused_past_its_lease_publishes_nothing_when_it_resumes(
    tmp_path: Path, workers: list[Worker], paused_at: str
) -> None:
    """Paused before its work ("claimed") or with its artifact written and flushed, only
    the completion marker left ("artifact-staged"): it resumes while the taker still works,
    and its result is discarded, with nothing of it visible, then or later."""
    store_dir = tmp_path / "store"
    source = write_version(tmp_path / "version", seed=3)
    resume = tmp_path / "resume"
    workers.append(Worker(store_dir, "paused", source, hold_at=paused_at, resume=resume))
    paused = workers[0]
    paused.expect("ready")
    paused.expect("claimed")
    paused.expect("holding")
    paused.signal(signal.SIGSTOP)
    resume.touch()  # seen only once it runs again

    lease, _ = _take_over(store_dir, "taker")
    assert lease.took_over_from == "paused"
    paused.signal(signal.SIGCONT)
    paused.expect("resumed")
    lost = paused.expect("lost")
    assert "taken over by replica 'taker'" in lost["message"]
    assert paused.finish() == 0
    reader = open_store(store_dir, "reader")
    assert reader.artifact(KEY) is None
    assert not list((store_dir / KEY.path).glob("artifact.*"))

    mine = write_version(tmp_path / "mine", seed=4)
    open_store(store_dir, "taker").complete(KEY, lease, mine, flavour="converted", reason=None)
    copied = tmp_path / "copied"
    copied.mkdir()
    record = reader.copy_artifact(KEY, copied)
    assert record is not None and record.built_by == "taker"
    assert tree_bytes(copied) == tree_bytes(mine)


def test_a_holder_that_keeps_renewing_is_never_taken_over_and_one_that_releases_is_at_once(
    tmp_path: Path
) -> None:
    """The keeper renews on its own thread; the observer's clock is manual and moves almost
    a lease between looks, so each look would take over had no renewal come in between."""
    holder = open_store(tmp_path / "store", "holder")
    now = [0.0]
    other = SharedDirectoryStore(tmp_path / "store", LeaseBook("other", LEASE,
                                                               clock=lambda: now[0]))
    lease = holder.claim(KEY)
    assert isinstance(lease, Lease)
    lease_file = tmp_path / "store" / KEY.path / "lease.1"
    def renewals() -> int:
        return int(json.loads(lease_file.read_bytes())["renewal"])

    with LeaseKeeper(holder, lease) as keeper:
        for renewal in range(1, 5):
            wait_until(lambda: renewals() >= renewal, 10, f"renewal {renewal}")  # noqa: B023
            claim = other.claim(KEY)
            assert isinstance(claim, Held) and claim.replica == "holder", claim
            now[0] += 0.9 * LEASE
        assert not keeper.lost
    holder.release(lease)
    again = other.claim(KEY)
    assert isinstance(again, Lease) and again.generation == 2 and again.took_over_from is None
    with pytest.raises(LeaseLostError, match="already released"):
        holder.renew(lease)
