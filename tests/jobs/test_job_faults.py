"""A job against real storage faults and a real replaced source: a full serving disk while
the converted model is saved is a retryable failure (never the original published), and a
version directory replaced under its job sends the job back to start again."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from sidecar.publish import VersionPublisher
from sidecar.state import Flavour, JobState
from sidecar.tfserving.numbering import served_version
from tests.jobs.conftest import Pipeline
from tests.support.disks import fill_disk, small_tmpfs
from tests.support.models import keras_mlp


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model B: a different MLP (20 input features) that replaces model A's directory."""
    return keras_mlp(tmp_path_factory.mktemp("other") / "model", features=20)


def test_a_full_disk_while_saving_is_a_retryable_failure_never_the_original(
    pipeline: Pipeline, mlp_model: Path
) -> None:
    served = served_version(5)
    pipeline.land(mlp_model, "mlp", 5)
    with small_tmpfs(pipeline.serving, "8m") as serving:
        filler = fill_disk(serving, leave=8 << 10)  # room to stage, none to save
        failed = pipeline.run("mlp", served)
        assert failed.state is JobState.FAILED and failed.flavour is None
        reason = failed.reason or ""
        assert os.strerror(errno.ENOSPC) in reason
        assert "could not complete saving the converted model" in reason
        assert "Fix: free space on the filesystem" in reason
        assert "retries it by itself in 10 s" in reason
        assert "`tftrt-sidecar admin convert mlp 5 --rebuild`" in reason
        assert os.listdir(serving / "mlp") == []  # nothing published, no staging left
        job = pipeline.journal.get("mlp", served)
        assert job is not None and job.retry_at is not None
        assert job.retry_at - job.updated_at == pytest.approx(10.0)

        os.unlink(filler)
        pipeline.journal.restart("mlp", served, reason="the test retries it")
        retried = pipeline.run("mlp", served)
        assert retried.state is JobState.PUBLISHED and retried.flavour is Flavour.CONVERTED
        assert VersionPublisher(serving).published_versions("mlp") == [served]


@pytest.mark.parametrize("step", ["job-converting", "job-building", "job-saved"])
def test_a_source_replaced_while_its_job_runs_sends_the_job_back_to_start_again(
    pipeline: Pipeline, mlp_model: Path, other_model: Path, step: str
) -> None:
    served = served_version(3)
    source = pipeline.land(mlp_model, "a", 3)

    def replace_source(at: str) -> None:
        if at == step:  # model B takes model A's version directory
            shutil.copytree(other_model, source.with_name(".landing-b"))
            os.rename(source, source.with_name(".old-a"))
            os.rename(source.with_name(".landing-b"), source)

    abandoned = pipeline.run("a", served, checkpoint_hook=replace_source)
    assert abandoned.state is JobState.DISCOVERED
    assert abandoned.reason is not None and "changed in incoming while its job ran" in (
        abandoned.reason)
    assert not (pipeline.serving / "a").exists() or os.listdir(pipeline.serving / "a") == []
    job = pipeline.journal.get("a", served)
    assert job is not None and job.state is JobState.DISCOVERED and job.attempts == 2
    assert pipeline.observer.results == []  # not a finished job: no result counted

    again = pipeline.run("a", served)  # the service runs it again once B settled
    assert again.state is JobState.PUBLISHED and again.flavour is Flavour.CONVERTED
    published = pipeline.journal.get("a", served)
    assert published is not None and published.source_fingerprint is not None
    assert again.replay_inputs > 0
    with (pipeline.serving / "a" / str(served) / "saved_model.pb").open("rb"):
        pass
