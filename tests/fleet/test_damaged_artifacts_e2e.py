"""Damaged artifacts in a fleet of real ``tftrt-sidecar run`` processes (each with its own
serving base, state and TF Serving stand-in, sharing one store and incoming base): a
garbage ``saved_model.pb`` in a completed artifact is refused by the replicas that install
it, built again by exactly one of them, and then every replica serves a model that loads;
and the fix an artifact refused too often prints (remove the key's directory) recovers the
version with no other step."""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path, PurePosixPath

import pytest

from sidecar.fleet import FleetKey, Lease
from sidecar.fleet.lease import MAX_REJECTIONS
from tests.fleet.conftest import LONG_LEASE, open_store, write_version
from tests.fleet.replicas import key_dirs, outcomes, replica, same_bytes
from tests.support.builders import land
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("one_build")  # one build per version

SERVED = 1000
FAST_RETRY = ("--retry-backoff-seconds", "1", "--retry-backoff-max-seconds", "2")


@pytest.mark.timeout(600)
def test_a_garbage_model_in_the_store_is_refused_rebuilt_once_and_served_everywhere(
    tmp_path: Path, mlp_model: Path
) -> None:
    incoming, store = tmp_path / "incoming", tmp_path / "store"
    incoming.mkdir()
    with ExitStack() as stack:
        first = stack.enter_context(replica(tmp_path, "r1", incoming=incoming, store=store))
        land(mlp_model, incoming, "mlp", 1)
        first.wait_published(SERVED)
        (key_dir,) = key_dirs(store, SERVED)
        (artifact,) = key_dir.glob("artifact.1.*")
        (artifact / "version" / "saved_model.pb").write_bytes(b"garbage, not a SavedModel")

        late = [stack.enter_context(replica(tmp_path, name, incoming=incoming, store=store))
                for name in ("r2", "r3")]
        for member in late:
            member.wait_published(SERVED)
            member.sidecar.standin.wait_for_state("mlp", SERVED, "AVAILABLE", 60)

        assert outcomes(key_dir) == {1: "complete", 2: "complete"}
        assert (key_dir / "rejected.1").is_file()
        jobs = {member.name: member.job(SERVED) for member in late}
        builders = [name for name, job in jobs.items() if job and not job.installed]
        assert len(builders) == 1, jobs  # rebuilt by exactly one replica
        for member in late:
            job = jobs[member.name]
            assert job is not None and job.built_by == builders[0]
        assert same_bytes(*(member.published(SERVED) for member in late))
        first.sidecar.standin.wait_for_state("mlp", SERVED, "AVAILABLE", 60)
        refusals = [member.sidecar.metric("tftrt_sidecar_fleet_artifacts_refused_total",
                                          model="mlp") or 0.0 for member in late]
        assert sum(refusals) >= 1, refusals
        refusers = [m for m, count in zip(late, refusals, strict=True) if count]
        assert all("is damaged: version/saved_model.pb holds 25 bytes" in m.sidecar.output()
                   for m in refusers)


@pytest.mark.timeout(600)
def test_the_fix_printed_for_a_key_refused_too_often_recovers_it_with_no_other_step(
    tmp_path: Path, mlp_model: Path
) -> None:
    incoming, store = tmp_path / "incoming", tmp_path / "store"
    incoming.mkdir()
    with replica(tmp_path, "r1", incoming=incoming, store=store) as first:
        land(mlp_model, incoming, "mlp", 1)
        first.wait_published(SERVED)
    (key_dir,) = key_dirs(store, SERVED)
    key = FleetKey.from_path(PurePosixPath(key_dir.relative_to(store)))
    assert key is not None
    # The key's artifacts were refused as often as the fleet refuses them, and the one
    # it keeps does not load either.
    tester = open_store(store, "tester", LONG_LEASE)
    assert tester.reject(key, 1, "test")
    for generation in range(2, MAX_REJECTIONS + 2):
        lease = tester.claim(key)
        assert isinstance(lease, Lease) and lease.generation == generation
        tester.complete(key, lease, write_version(tmp_path / f"junk{generation}"),
                        flavour="converted", reason=None)
        if generation <= MAX_REJECTIONS:
            assert tester.reject(key, generation, "test")

    with replica(tmp_path, "r2", incoming=incoming, store=store, extra=FAST_RETRY) as second:
        def failed_with_the_fix() -> bool:
            job = second.job(SERVED)
            return bool(job and job.state.value == "failed" and job.retry_at is not None
                        and "remove the key's directory" in (job.reason or ""))

        wait_until(failed_with_the_fix, 240, "r2 failing, retryably, with the fix")
        job = second.job(SERVED)
        assert job is not None and str(key.path) in (job.reason or "")
        assert not second.published(SERVED).exists()

        shutil.rmtree(key_dir)  # the printed fix, and nothing else

        second.wait_published(SERVED)
        job = second.job(SERVED)
        assert job is not None and (job.built_by, job.installed) == ("r2", False)
        second.sidecar.standin.wait_for_state("mlp", SERVED, "AVAILABLE", 60)
        assert outcomes(key_dir) == {1: "complete"}
