"""Faults injected while ``tftrt-sidecar run`` serves traffic through its tap: the incoming
base renamed away and back, its mount lazily detached, a served version withdrawn and
restored, the state disk and then the serving disk full, a version replaced while its job
builds. Each time the process lives, every client call is answered, nothing served is
deleted, a storage fault shows in admin health and /metrics while it lasts, and the sidecar
carries on by itself once it passes."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sidecar.jobs.fingerprint import content_fingerprint
from sidecar.publish import VersionPublisher
from sidecar.state import Flavour, JobJournal, JobState
from tests.support.builders import land
from tests.support.disks import fill_disk, small_tmpfs, tree_listing
from tests.support.models import keras_mlp
from tests.support.running_sidecar import RunningSidecar, Traffic, running_sidecar
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("one_build")  # one build per version

INCOMING_HEALTH, STATE_HEALTH = "tftrt.sidecar.Incoming", "tftrt.sidecar.State"


def published(sidecar: RunningSidecar, serving: Path, version: int) -> None:
    wait_until(lambda: (serving / "mlp" / str(version)).is_dir(), 120,
               f"mlp/{version} published\n{sidecar.output()[-3000:]}")
    sidecar.standin.wait_for_state("mlp", version, "AVAILABLE", 60)


def in_fault(sidecar: RunningSidecar, service: str, area: str, faulty: bool) -> None:
    status = "NOT_SERVING" if faulty else "SERVING"
    wait_until(lambda: sidecar.health(service) == status, 30, f"{service} {status}")
    wait_until(lambda: sidecar.metric("tftrt_sidecar_storage_fault", area=area) == faulty,
               30, f"tftrt_sidecar_storage_fault{{area={area}}} == {int(faulty)}")


@pytest.mark.timeout(300)
def test_incoming_faults_withdraw_nothing_and_a_withdrawn_version_comes_back(
    tmp_path: Path, mlp_model: Path
) -> None:
    incoming, serving, volume = tmp_path / "incoming", tmp_path / "serving", tmp_path / "volume"
    land(mlp_model, incoming, "mlp", 1)
    with running_sidecar(tmp_path, incoming=incoming, serving=serving,
                         state=tmp_path / "state") as sidecar:
        published(sidecar, serving, 1000)
        land(mlp_model, incoming, "mlp", 2)
        published(sidecar, serving, 2000)
        served = {v: tree_listing(serving / "mlp" / str(v)) for v in (1000, 2000)}
        with Traffic(sidecar.tap) as traffic:
            os.rename(incoming, tmp_path / "away")  # the base is gone for a while
            in_fault(sidecar, INCOMING_HEALTH, "incoming", True)
            assert "is missing" in sidecar.output()
            os.rename(tmp_path / "away", incoming)
            in_fault(sidecar, INCOMING_HEALTH, "incoming", False)

            volume.mkdir()  # the base becomes a mount of a volume...
            os.rename(incoming / "mlp", volume / "mlp")
            subprocess.run(["mount", "--bind", str(volume), str(incoming)], check=True)
            try:
                in_fault(sidecar, INCOMING_HEALTH, "incoming", False)
                faults = sidecar.metric("tftrt_sidecar_storage_faults_total", area="incoming")
                assert faults is not None and faults >= 1
                subprocess.run(["umount", "-l", str(incoming)], check=True)  # ...detached
                in_fault(sidecar, INCOMING_HEALTH, "incoming", True)
                assert "holds no model version" in sidecar.output()
                subprocess.run(["mount", "--bind", str(volume), str(incoming)], check=True)
                in_fault(sidecar, INCOMING_HEALTH, "incoming", False)
                assert sidecar.metric("tftrt_sidecar_storage_faults_total",
                                      area="incoming") == faults + 1
                assert {v: tree_listing(serving / "mlp" / str(v)) for v in served} == served

                shutil.rmtree(incoming / "mlp" / "1")  # healthy: a real withdrawal
                kept = serving / "mlp" / ".withdrawn-1000"
                wait_until(kept.is_dir, 30, "mlp/1000 withdrawn")
                assert not (serving / "mlp" / "1000").exists()
                assert tree_listing(kept) == served[1000]  # moved aside, not deleted
                land(mlp_model, incoming, "mlp", 1)  # the same content comes back
                wait_until((serving / "mlp" / "1000").is_dir, 30, "mlp/1000 restored")
                assert tree_listing(serving / "mlp" / "1000") == served[1000]
            finally:
                subprocess.run(["umount", "-l", str(incoming)], check=False)
        assert sidecar.alive()
    assert traffic.failures == [] and traffic.served > 20


@pytest.mark.timeout(300)
def test_full_state_and_serving_disks_are_ridden_out_and_retried(
    tmp_path: Path, mlp_model: Path
) -> None:
    incoming, serving, state = tmp_path / "incoming", tmp_path / "serving", tmp_path / "state"
    land(mlp_model, incoming, "mlp", 1)
    with small_tmpfs(state, "16m"), small_tmpfs(serving, "16m"), running_sidecar(
            tmp_path, incoming=incoming, serving=serving, state=state) as sidecar:
        published(sidecar, serving, 1000)
        with Traffic(sidecar.tap) as traffic:
            filler = fill_disk(state)  # the journal cannot grow
            land(mlp_model, incoming, "mlp", 2)
            in_fault(sidecar, STATE_HEALTH, "state", True)
            assert "database or disk is full" in sidecar.output()
            assert "cannot rollback" not in sidecar.output()
            os.unlink(filler)
            published(sidecar, serving, 2000)  # it carries on by itself
            in_fault(sidecar, STATE_HEALTH, "state", False)

            filler = fill_disk(serving, leave=8 << 10)  # room to stage, none to save
            land(mlp_model, incoming, "mlp", 3)
            with JobJournal.open(state, clock=lambda: 0.0) as journal:
                wait_until(lambda: any(t.to_state is JobState.FAILED
                                       for t in journal.history("mlp", 3000)), 120,
                           "mlp/3000 failed on the full serving disk")
                assert VersionPublisher(serving).published_versions("mlp") == [1000, 2000]
                os.unlink(filler)
                published(sidecar, serving, 3000)  # retried after its backoff
                job = journal.get("mlp", 3000)
                reasons = [t.reason or "" for t in journal.history("mlp", 3000)]
            assert job is not None and job.flavour is Flavour.CONVERTED and job.attempts >= 2
            assert any(os.strerror(errno.ENOSPC) in reason for reason in reasons)
        assert sidecar.alive()
    assert traffic.failures == [] and traffic.served > 20


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model B: an MLP of the same signature with other weights, so that traffic is
    answered by either."""
    return keras_mlp(tmp_path_factory.mktemp("other") / "model", seed=2)


@pytest.mark.timeout(300)
def test_a_source_replaced_while_its_job_builds_is_built_again_from_the_new_content(
    tmp_path: Path, mlp_model: Path, other_model: Path
) -> None:
    incoming, serving, state = tmp_path / "incoming", tmp_path / "serving", tmp_path / "state"
    gate = tmp_path / "gate"
    gate.mkdir()
    land(mlp_model, incoming, "mlp", 1)
    launcher = ("-m", "tests.support.gated_sidecar", str(gate), "job-building", "2")
    with running_sidecar(tmp_path, incoming=incoming, serving=serving, state=state,
                         launcher=launcher) as sidecar:
        published(sidecar, serving, 1000)
        with Traffic(sidecar.tap) as traffic:  # served by 1000, then by 2000
            land(mlp_model, incoming, "mlp", 2)  # model A lands as 2...
            wait_until((gate / "paused").exists, 120, "the job of mlp/2 building")
            shutil.copytree(other_model, incoming / "mlp" / ".landing-b")
            os.rename(incoming / "mlp" / "2", tmp_path / "model-a")
            os.rename(incoming / "mlp" / ".landing-b", incoming / "mlp" / "2")  # ...B takes it
            (gate / "resume").touch()
            published(sidecar, serving, 2000)
        with JobJournal.open(state, clock=lambda: 0.0) as journal:
            job = journal.get("mlp", 2000)
            reasons = [t.reason or "" for t in journal.history("mlp", 2000)]
        assert job is not None and job.flavour is Flavour.CONVERTED and job.attempts == 2
        assert any("changed in incoming while its job ran" in reason for reason in reasons)
        assert job.source_fingerprint == content_fingerprint(incoming / "mlp" / "2")  # B's
        assert sidecar.alive()
    assert traffic.failures == [] and traffic.served > 20
