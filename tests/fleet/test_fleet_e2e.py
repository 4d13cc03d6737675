"""A fleet of real ``tftrt-sidecar run`` processes, each with its own serving base, state,
TF Serving stand-in and tap, sharing one store and one incoming base: a version is
converted once and installed everywhere else, byte for byte; a holder killed mid-build is
taken over once its lease expires; a holder paused past its lease publishes nothing; a late
replica installs without converting; two device models convert once each."""

from __future__ import annotations

import functools
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from sidecar.fleet.shape_source import REFRESH_SECONDS
from tests.fleet.replicas import (
    Replica,
    key_dirs,
    outcomes,
    replica,
    same_bytes,
)
from tests.support.builders import land, warmup_batches
from tests.support.disks import fill_disk, small_tmpfs
from tests.support.e2e import predict_mlp
from tests.support.running_sidecar import Traffic
from tests.support.serving_poller import ServingPoller
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("one_build")  # one build per version

SERVED = 1000
BUILT = ["discovered", "converting", "building", "verifying", "published"]
INSTALLED = ["discovered", "verifying", "published"]


@contextmanager
def holding_at(tmp_path: Path, mlp_model: Path, name: str, step: str) -> Iterator[Replica]:
    """Replica ``name`` alone with the fleet's first version, holding its key and waiting at
    ``step`` of its build (until ``tmp_path/gate/resume`` exists)."""
    incoming, gate = tmp_path / "incoming", tmp_path / "gate"
    incoming.mkdir()
    gate.mkdir()
    with replica(tmp_path, name, incoming=incoming, store=tmp_path / "store",
                 launcher=("-m", "tests.support.gated_sidecar", str(gate), step, "1")) as holder:
        land(mlp_model, incoming, "mlp", 1)
        wait_until((gate / "paused").exists, 240, f"{name} at {step}")
        yield holder


@pytest.mark.timeout(600)
def test_three_replicas_convert_once_and_a_late_one_installs(
    tmp_path: Path, mlp_model: Path
) -> None:
    incoming, store = tmp_path / "incoming", tmp_path / "store"
    incoming.mkdir()
    with ExitStack() as stack:
        fleet = [stack.enter_context(replica(tmp_path, name, incoming=incoming, store=store))
                 for name in ("r1", "r2", "r3")]
        land(mlp_model, incoming, "mlp", 1)
        for member in fleet:
            member.wait_published(SERVED)

        jobs = {member.name: member.job(SERVED) for member in fleet}
        builders = [name for name, job in jobs.items() if job and not job.installed]
        assert len(builders) == 1, jobs
        for member in fleet:
            job = jobs[member.name]
            assert job is not None and job.built_by == builders[0]
            assert member.stages(SERVED) == (INSTALLED if job.installed else BUILT)
            assert member.origin(SERVED) == (builders[0], member.name != builders[0])
            wait_until(functools.partial(counted_once, member), 30,
                       f"{member.name}'s fleet metrics")
        assert sum(member.fleet_publishes("built") for member in fleet) == 1
        assert sum(member.fleet_publishes("installed") for member in fleet) == 2
        assert same_bytes(*(member.published(SERVED) for member in fleet))
        for member in fleet:
            assert (member.published(SERVED) / "assets.extra" /
                    "tf_serving_warmup_requests").is_file()
        (key,) = key_dirs(store, SERVED)
        assert outcomes(key) == {1: "complete"}

        started = time.monotonic()
        late = stack.enter_context(replica(tmp_path, "r4", incoming=incoming, store=store))
        wait_until(lambda: late.sidecar.health("tftrt.sidecar.Fleet") == "SERVING", 120,
                   "the late replica ready (its pod's readiness probe)")
        ready_seconds = time.monotonic() - started
        assert late.published(SERVED).is_dir()  # ready only once it serves what the fleet does
        assert late.stages(SERVED) == INSTALLED
        assert same_bytes(late.published(SERVED), fleet[0].published(SERVED))
        late.sidecar.standin.wait_for_state("mlp", SERVED, "AVAILABLE", 60)
        # No first-request stall: TF Serving replayed the installed warmup file before the
        # version became AVAILABLE, as it did on the others.
        fleet[0].sidecar.standin.wait_for_state("mlp", SERVED, "AVAILABLE", 60)
        assert late.sidecar.standin.warmup_records("mlp", SERVED) == (
            fleet[0].sidecar.standin.warmup_records("mlp", SERVED)) > 0
        with Traffic(late.sidecar.tap, version=SERVED) as traffic:
            wait_until(lambda: traffic.served >= 10, 60, "the late replica answering")
        assert traffic.failures == []
        assert outcomes(key) == {1: "complete"}  # still built once
        print(f"late replica ready in {ready_seconds:.1f} s (process start included)")

        # Fleet-wide shapes: each replica sees its own batch size; whoever builds the next
        # version builds and warms it up for all of them.
        for member, batch in zip(fleet, (5, 6, 7), strict=True):
            for _ in range(20):
                predict_mlp(member.sidecar.tap, batch)
        wait_until(lambda: contributed(store, {"r1": 5, "r2": 6, "r3": 7}), 60,
                   "every replica's shapes in the store")
        # Each replica caches the merged counts for REFRESH_SECONDS: wait until every one
        # (whichever builds next) reads them all, over the admin API that shows them.
        wait_until(lambda: {m.name: m.batch_sizes_seen() for m in [*fleet, late]},
                   REFRESH_SECONDS + 60, "every replica's merged counts with 5, 6 and 7",
                   done=lambda seen: all({5, 6, 7} <= sizes for sizes in seen.values()),
                   interval=0.5)
        land(mlp_model, incoming, "mlp", 2)
        for member in [*fleet, late]:
            member.wait_published(2000)
        (builder,) = [m for m in [*fleet, late] if not getattr(m.job(2000), "installed", True)]
        assert {5, 6, 7} <= set(warmup_batches(builder.published(2000))), builder.name
        assert all(member.sidecar.metric("tftrt_sidecar_fleet_shape_contributors") == 4
                   for member in fleet)
        # The admin API shows the fleet's traffic too (the counts the builds used).
        assert {5, 6, 7} <= fleet[0].batch_sizes_seen()


@pytest.mark.timeout(600)
def test_a_holder_killed_mid_build_is_taken_over_after_its_lease(
    tmp_path: Path, mlp_model: Path
) -> None:
    incoming, store = tmp_path / "incoming", tmp_path / "store"
    with holding_at(tmp_path, mlp_model, "holder", "job-building") as holder, replica(
            tmp_path, "taker", incoming=incoming, store=store) as taker, ServingPoller(
            taker.serving, poll_seconds=0.1) as watched:
        holder.signal(signal.SIGKILL)
        holder.sidecar.expected_exit = -signal.SIGKILL
        killed = time.monotonic()
        taker.wait_published(SERVED)
        recovered = time.monotonic() - killed
        assert not holder.published(SERVED).exists()
        (key,) = key_dirs(store, SERVED)
        assert outcomes(key) == {1: "revoked", 2: "complete"}
        job = taker.job(SERVED)
        assert job is not None and (job.built_by, job.installed) == ("taker", False)
        wait_until(lambda: taker.sidecar.metric("tftrt_sidecar_fleet_takeovers_total",
                                                model="mlp") == 1, 30, "takeover counted")
        print(f"recovered {recovered:.1f} s after the SIGKILL (lease 4 s)")
        assert watched.wait_for("mlp", SERVED, 60)
    assert watched.violations == []  # nothing partial was ever visible
    # The killed replica's pod comes back on its own disks: it installs, never builds again.
    with replica(tmp_path, "holder", incoming=incoming, store=store) as back:
        back.wait_published(SERVED)
        job = back.job(SERVED)
        assert job is not None and (job.built_by, job.installed) == ("taker", True)
        assert same_bytes(back.published(SERVED), tmp_path / "taker" / "serving" / "mlp" /
                          str(SERVED))
    assert outcomes(key) == {1: "revoked", 2: "complete"}


@pytest.mark.timeout(600)
def test_a_holder_paused_past_its_lease_publishes_nothing_of_its_own(
    tmp_path: Path, mlp_model: Path
) -> None:
    incoming, store, gate = tmp_path / "incoming", tmp_path / "store", tmp_path / "gate"
    with holding_at(tmp_path, mlp_model, "paused", "job-saved") as paused:
        paused.signal(signal.SIGSTOP)  # renewals stop with it
        try:
            with replica(tmp_path, "taker", incoming=incoming, store=store) as taker:
                taker.wait_published(SERVED)
                (key,) = key_dirs(store, SERVED)
                assert outcomes(key) == {1: "revoked", 2: "complete"}
                paused.signal(signal.SIGCONT)
                (gate / "resume").touch()
                paused.wait_published(SERVED)
                job = paused.job(SERVED)
                assert job is not None and (job.built_by, job.installed) == ("taker", True)
                assert same_bytes(paused.published(SERVED), taker.published(SERVED))
                assert outcomes(key) == {1: "revoked", 2: "complete"}
                assert [p.name for p in key.iterdir() if p.name.startswith("artifact.")] == [
                    next(p.name for p in key.iterdir() if p.name.startswith("artifact.2."))]
                assert "was taken over by replica 'taker'" in paused.sidecar.output()
        finally:
            paused.signal(signal.SIGCONT)
            (gate / "resume").touch()


@pytest.mark.timeout(600)
def test_each_device_model_converts_once(tmp_path: Path, mlp_model: Path) -> None:
    incoming, store = tmp_path / "incoming", tmp_path / "store"
    incoming.mkdir()
    forced = ("-m", "tests.fleet.slug_sidecar", "cpu-other-model")
    with ExitStack() as stack:
        fleet: list[Replica] = [
            stack.enter_context(replica(tmp_path, "a1", incoming=incoming, store=store)),
            stack.enter_context(replica(tmp_path, "a2", incoming=incoming, store=store)),
            stack.enter_context(replica(tmp_path, "b1", incoming=incoming, store=store,
                                        launcher=forced)),
        ]
        land(mlp_model, incoming, "mlp", 1)
        for member in fleet:
            member.wait_published(SERVED)
        keys = key_dirs(store, SERVED)
        assert len(keys) == 2 and any("cpu-other-model" in str(k) for k in keys)
        assert [outcomes(key) for key in keys] == [{1: "complete"}, {1: "complete"}]
        installed = {member.name: bool(getattr(member.job(SERVED), "installed", True))
                     for member in fleet}
        assert installed["b1"] is False
        assert sorted([installed["a1"], installed["a2"]]) == [False, True]


@pytest.mark.timeout(600)
def test_a_read_only_or_full_store_fails_the_job_retryably_and_serving_goes_on(
    tmp_path: Path, mlp_model: Path
) -> None:
    incoming, store = tmp_path / "incoming", tmp_path / "store"
    incoming.mkdir()
    land(mlp_model, incoming, "mlp", 1)
    with small_tmpfs(store, "16m"), replica(tmp_path, "alone", incoming=incoming,
                                            store=store) as alone:
        alone.wait_published(SERVED)
        alone.sidecar.standin.wait_for_state("mlp", SERVED, "AVAILABLE", 60)
        with Traffic(alone.sidecar.tap) as traffic:
            subprocess.run(["mount", "-o", "remount,ro", str(store)], check=True)
            land(mlp_model, incoming, "mlp", 2)
            failed_on(alone, 2000, "Read-only file system")
            # The claim's renewals report it on health (the overall status stays SERVING).
            wait_until(lambda: alone.sidecar.health("tftrt.sidecar.Store") == "NOT_SERVING",
                       30, "the store's fault on health")
            assert alone.sidecar.health("") == "SERVING"
            subprocess.run(["mount", "-o", "remount,rw", str(store)], check=True)
            filler = fill_disk(store)
            failed_on(alone, 2000, "No space left on device")
            filler.unlink()
            alone.wait_published(2000)
            wait_until(lambda: alone.sidecar.health("tftrt.sidecar.Store") == "SERVING", 30,
                       "the store's fault passed")
        assert traffic.failures == [] and traffic.served > 10
        job = alone.job(2000)
        assert job is not None and (job.built_by, job.installed) == ("alone", False)
        assert alone.published(1000).is_dir()  # served throughout, and kept


def contributed(store: Path, batches: dict[str, int]) -> bool:
    """Whether each replica's shape file in the store holds its batch size."""
    for name, batch in batches.items():
        path = store / "shapes" / f"{name}.json"
        if not path.exists() or f"[{batch},16]" not in path.read_text():
            return False
    return True


def counted_once(member: Replica) -> bool:
    """Whether the replica's metrics count the version once, built or installed."""
    return member.fleet_publishes("built") + member.fleet_publishes("installed") == 1


def failed_on(member: Replica, served: int, words: str) -> None:
    """Wait until the job of ``served`` failed for a reason with ``words``, to be retried."""
    def failed() -> bool:
        job = member.job(served)
        return bool(job and job.state.value == "failed" and words in (job.reason or "")
                    and job.retry_at is not None)
    wait_until(failed, 120, f"{member.name}'s job of {served} failing on '{words}'")
