"""Serving the original first (``serve_original_first``, on by default) on real SavedModels,
journal and directories: the first job publishes the original at once, warmed up; its
converted form takes over as the next served number; a failed conversion leaves the
original served with the reason; a rolled-back original is never republished converted."""

from __future__ import annotations

from pathlib import Path

from sidecar.config import ModelPolicy
from sidecar.publish import roll_back_version
from sidecar.state import Flavour, JobState
from sidecar.tfserving.layout import published_versions
from sidecar.tfserving.numbering import served_version
from tests.jobs.conftest import Pipeline
from tests.support.builders import warmup_batches
from tests.support.serving_poller import ServingPoller

ORIGINAL_FIRST = ModelPolicy()
"""The default policy: it serves the original first."""


def served_cleanly(serving: Path) -> None:
    """Every version loads as TF Serving loads it (Session loader, then its warmup)."""
    poller = ServingPoller(serving)
    poller.poll_once()
    assert poller.violations == []


def test_the_original_is_served_first_and_its_converted_form_takes_over(
    pipeline: Pipeline, mlp_model: Path
) -> None:
    assert ORIGINAL_FIRST.serve_original_first
    original, converted = served_version(1), served_version(1) + 1
    pipeline.land(mlp_model, "mlp", 1)
    first = pipeline.run("mlp", original, ORIGINAL_FIRST)

    assert first.state is JobState.PUBLISHED, first.reason
    assert first.flavour is Flavour.ORIGINAL and first.converted_as == converted
    assert first.flavour_reason is not None and "served first" in first.flavour_reason
    version_dir = pipeline.serving / "mlp" / str(original)
    assert not (version_dir / "assets.extra" / "tftrt").exists()  # nothing was converted
    assert sorted(warmup_batches(version_dir)) == [1, 8]  # warmed up for the replay inputs
    stages = [event[3] for event in pipeline.observer.events if event[0] == "started"]
    assert JobState.BUILDING not in stages  # no engine was built before it was served
    queued = pipeline.journal.get("mlp", converted)
    assert queued is not None and queued.state is JobState.DISCOVERED
    served_cleanly(pipeline.serving)

    second = pipeline.run("mlp", converted, ORIGINAL_FIRST)
    assert second.state is JobState.PUBLISHED, second.reason
    assert second.flavour is Flavour.CONVERTED and second.converted_as is None
    assert (pipeline.serving / "mlp" / str(converted) / "assets.extra/tftrt").is_dir()
    # Both numbers are in view; TF Serving serves the newest, the converted form.
    assert published_versions(pipeline.serving / "mlp") == [original, converted]
    served_first = pipeline.journal.served_first("mlp", converted)
    assert served_first is not None and served_first.version == original
    served_cleanly(pipeline.serving)


def test_with_the_switch_off_the_converted_form_is_the_first_served_number(
    pipeline: Pipeline, mlp_model: Path
) -> None:
    pipeline.land(mlp_model, "mlp", 2)
    result = pipeline.run("mlp", served_version(2), ModelPolicy(serve_original_first=False))

    assert result.state is JobState.PUBLISHED and result.flavour is Flavour.CONVERTED
    assert result.converted_as is None
    assert pipeline.journal.get("mlp", served_version(2) + 1) is None
    assert published_versions(pipeline.serving / "mlp") == [served_version(2)]


def test_a_failed_conversion_leaves_the_original_served_with_the_reason(
    pipeline: Pipeline, mlp_model: Path
) -> None:
    no_tensorrt = ModelPolicy(backend="tensorrt")  # TF 2.21 has no TensorRT
    original, converted = served_version(3), served_version(3) + 1
    pipeline.land(mlp_model, "mlp", 3)
    assert pipeline.run("mlp", original, no_tensorrt).state is JobState.PUBLISHED
    result = pipeline.run("mlp", converted, no_tensorrt)

    # Publishing the original again would only copy it: the job ends with the reason.
    assert result.state is JobState.SKIPPED
    assert result.reason is not None and "BackendUnavailableError" in result.reason
    assert f"stays served as version {original}" in result.reason
    job = pipeline.journal.get("mlp", converted)
    assert job is not None and job.reason == result.reason
    assert published_versions(pipeline.serving / "mlp") == [original]
    served_cleanly(pipeline.serving)


def test_the_converted_form_of_a_rolled_back_original_is_never_published(
    pipeline: Pipeline, mlp_model: Path
) -> None:
    pipeline.publisher().publish_copy("mlp", served_version(0), mlp_model)  # served before
    original, converted = served_version(4), served_version(4) + 1
    pipeline.land(mlp_model, "mlp", 4)
    assert pipeline.run("mlp", original, ORIGINAL_FIRST).state is JobState.PUBLISHED
    assert roll_back_version(pipeline.serving / "mlp", original) is not None  # the operator

    result = pipeline.run("mlp", converted, ORIGINAL_FIRST)
    assert result.state is JobState.SKIPPED
    assert result.reason is not None and "has since been rolled back or withdrawn" in result.reason
    assert published_versions(pipeline.serving / "mlp") == [served_version(0)]
