"""The per-version job on real SavedModels, journal, directories and the real converter."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from sidecar.jobs import ReplayOrigin, StageOutcome
from sidecar.publish.published_accuracy import AccuracyRecord
from sidecar.shapes import ShapeObservation, ShapeSet, ShapeStore, ShapeStoreSettings, TensorSpec
from sidecar.state import Flavour, JobState
from sidecar.tfserving.numbering import served_version
from sidecar.tfserving.warmup import (
    predict_request_from_arrays,
    read_predict_requests,
    write_warmup_file,
)
from tests.jobs.conftest import ONE_BUILD, Pipeline
from tests.support.builders import converter_with_a_bug, warmup_batches
from tests.support.disks import tree_listing
from tests.support.serving_poller import ServingPoller


def served_cleanly(serving: Path) -> ServingPoller:
    """Load every version like TF Serving does (Session loader, then warmup replay)."""
    poller = ServingPoller(serving)
    poller.poll_once()
    assert poller.violations == []
    return poller


def hidden_entries(model_dir: Path) -> list[str]:
    return sorted(name for name in os.listdir(model_dir) if name.startswith("."))


def test_converted_version_is_published_with_warmup_and_installed_engines(
    pipeline: Pipeline, mlp_model: Path
) -> None:
    served = served_version(1)
    pipeline.land(mlp_model, "mlp", 1)
    result = pipeline.run("mlp", served)

    assert result.state is JobState.PUBLISHED, result.reason
    assert result.version == served
    assert result.flavour is Flavour.CONVERTED and result.flavour_reason is None
    published = pipeline.serving / "mlp" / str(served)
    assert result.published_path == published
    assert result.replay_origin is ReplayOrigin.DEFAULT_BATCHES
    assert sorted(warmup_batches(published)) == [1, 8] and result.warmup_records == 2
    assert json.loads((published / "assets.extra/tftrt/conversion.json").read_text())["segments"]
    assert result.verification is not None and result.verification.matches
    # Which engines are kept depends on timing them against native TF on this (busy) machine;
    # whatever was kept travels in the version and is installed into the cache.
    assert result.engines is not None
    assert result.engines.directory.is_relative_to(pipeline.engine_cache)
    shipped = published / "assets.extra/tftrt/engines" / result.engines.namespace
    in_version = sorted(os.listdir(shipped)) if shipped.is_dir() else []
    cached = sorted(os.listdir(result.engines.directory)) if in_version else []
    assert cached == in_version and result.engines.installed == len(in_version)
    assert bool(in_version) == (result.engines_kept > 0)
    # Engines are in the cache and the flavour journaled before the version became visible.
    steps = pipeline.steps
    assert steps.index("job-engines-installed") < steps.index("job-flavour-chosen")
    assert steps.index("job-flavour-chosen") < steps.index("renamed") < steps.index("job-published")

    history = [t.to_state for t in pipeline.journal.history("mlp", served)]
    assert history == [JobState.DISCOVERED, JobState.CONVERTING, JobState.BUILDING,
                       JobState.VERIFYING, JobState.PUBLISHED]
    assert set(result.stage_seconds) == {JobState.DISCOVERED, JobState.CONVERTING,
                                         JobState.BUILDING, JobState.VERIFYING}
    assert [e[3] for e in pipeline.observer.events if e[0] == "finished"] == [
        JobState.CONVERTING, JobState.BUILDING, JobState.VERIFYING]
    assert {e[4] for e in pipeline.observer.events if e[0] == "finished"} == {StageOutcome.OK}
    assert pipeline.observer.results == [result]
    assert hidden_entries(pipeline.serving / "mlp") == []
    assert served_cleanly(pipeline.serving).loaded == [("mlp", served)]


def test_recorded_request_shapes_come_before_the_models_own_warmup_file(
    pipeline: Pipeline, mlp_model: Path
) -> None:
    source = pipeline.land(mlp_model, "mlp", 1)
    own = predict_request_from_arrays("mlp", {"x": np.zeros((2, 16), np.float32)})
    write_warmup_file(source, [own])  # lower priority than recorded traffic
    sampled = np.arange(48, dtype=np.float32).reshape(3, 16) / 48
    request = predict_request_from_arrays("mlp", {"x": sampled})
    now = time.time()
    with ShapeStore(pipeline.root / "state", ShapeStoreSettings(), clock=time.time) as store:
        def seen(batch: int, sample: bytes | None = None) -> ShapeObservation:
            shapes = ShapeSet.of({"x": TensorSpec("DT_FLOAT", (batch, 16))})
            return ShapeObservation("mlp", "serving_default", shapes, now, sample=sample)

        store.record([seen(3, request.SerializeToString())] + [seen(3)] * 4 + [seen(5)] * 2)
        pipeline.shape_source = store
        result = pipeline.run("mlp", served_version(1))

    assert result.state is JobState.PUBLISHED, result.reason
    assert result.replay_origin is ReplayOrigin.SHAPE_SOURCE
    published = pipeline.serving / "mlp" / str(served_version(1))
    assert warmup_batches(published) == [3, 5]  # most traffic first
    replayed = tf.make_ndarray(read_predict_requests(published)[0].inputs["x"])
    np.testing.assert_array_equal(replayed, sampled)  # the sampled values, not random ones
    report = json.loads((published / "assets.extra/tftrt/conversion.json").read_text())
    measured = [e["shapes"] for s in report["segments"] for e in s["engines"]]
    assert [[3, 16]] in measured and [[5, 16]] in measured
    served_cleanly(pipeline.serving)


def test_a_model_that_cannot_be_verified_is_published_original_with_the_reason(
    pipeline: Pipeline, noisy: Path
) -> None:
    served = served_version(4)
    pipeline.land(noisy, "noisy", 4)
    result = pipeline.run("noisy", served)

    assert result.state is JobState.PUBLISHED, result.reason
    assert result.flavour is Flavour.ORIGINAL
    assert result.flavour_reason is not None
    assert "differ" in result.flavour_reason or "does not match" in result.flavour_reason
    job = pipeline.journal.get("noisy", served)
    assert job is not None and job.flavour is Flavour.ORIGINAL
    assert job.flavour_reason == result.flavour_reason
    published = pipeline.serving / "noisy" / str(served)
    assert not (published / "assets.extra" / "tftrt").exists()  # the original, not converted
    assert sorted(warmup_batches(published)) == [1, 8]
    assert StageOutcome.FELL_BACK in {e[4] for e in pipeline.observer.events}
    assert hidden_entries(pipeline.serving / "noisy") == []
    served_cleanly(pipeline.serving)


def test_a_conversion_that_raises_publishes_the_original(
    pipeline: Pipeline, mlp_model: Path
) -> None:
    pipeline.land(mlp_model, "mlp", 2)
    no_tensorrt = replace(ONE_BUILD, backend="tensorrt")  # TF 2.21 has no TensorRT
    result = pipeline.run("mlp", served_version(2), no_tensorrt)

    assert result.state is JobState.PUBLISHED and result.flavour is Flavour.ORIGINAL
    assert result.flavour_reason is not None
    assert "BackendUnavailableError" in result.flavour_reason
    assert "tensorrt" in result.flavour_reason
    assert result.engines is None


def test_a_bug_in_a_conversion_step_publishes_the_original_logged_and_counted(
    pipeline: Pipeline, mlp_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline.land(mlp_model, "mlp", 4)
    with caplog.at_level(logging.WARNING, logger="sidecar.jobs"):
        result = pipeline.run("mlp", served_version(4), converter_factory=converter_with_a_bug)

    assert result.state is JobState.PUBLISHED and result.flavour is Flavour.ORIGINAL
    assert result.flavour_reason == "building engines failed: KeyError: 'a planted bug'"
    bugs = [r for r in caplog.records if "a bug: please report it" in r.getMessage()]
    assert len(bugs) == 1 and bugs[0].levelno == logging.WARNING
    assert bugs[0].exc_info is not None and bugs[0].exc_info[0] is KeyError  # the traceback
    assert ("internal-error", "mlp", served_version(4), JobState.BUILDING, None) in (
        pipeline.observer.events)
    served_cleanly(pipeline.serving)


def test_a_conversion_failing_on_purpose_is_no_internal_error(
    pipeline: Pipeline, mlp_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline.land(mlp_model, "mlp", 5)
    with caplog.at_level(logging.WARNING, logger="sidecar.jobs"):
        result = pipeline.run("mlp", served_version(5), replace(ONE_BUILD, backend="tensorrt"))
    assert result.flavour is Flavour.ORIGINAL  # BackendUnavailableError: TF 2.21 has no TF-TRT
    assert not any(r.exc_info for r in caplog.records)
    assert not [e for e in pipeline.observer.events if e[0] == "internal-error"]


def test_int8_without_recorded_requests_is_converted_as_fp16_saying_why(
    pipeline: Pipeline, mlp_model: Path
) -> None:
    pipeline.land(mlp_model, "mlp", 3)
    int8 = replace(ONE_BUILD, precision="INT8")  # no shape source: the replay inputs are synthetic
    result = pipeline.run("mlp", served_version(3), int8)

    assert result.state is JobState.PUBLISHED and result.flavour is Flavour.CONVERTED
    published = pipeline.serving / "mlp" / str(served_version(3))
    record = AccuracyRecord.read(published)
    assert record is not None and record.precision in ("FP32", "BF16", "FP16")
    assert "INT8 was not tried" in record.precision_reason
    assert "default-batch-sizes" in record.precision_reason
    # No recorded requests to hold out: checked on the replay inputs (1 and 8 rows); the
    # MLP's softmax output is class probabilities, which "auto" checks by top-1 agreement.
    assert record.compared_on == "replay inputs" and record.compared == 2
    assert record.top1_rows == 9 and record.top1_agreement == 1.0
    report = json.loads((published / "assets.extra/tftrt/conversion.json").read_text())
    assert report["params"]["precision_mode"] == "FP16"  # what INT8 allows besides int8
    served_cleanly(pipeline.serving)


def test_an_already_published_version_number_is_skipped_untouched(
    pipeline: Pipeline, mlp_model: Path, noisy: Path
) -> None:
    served = served_version(3)
    pipeline.publisher().publish_copy("mlp", served, noisy)  # put there by someone else
    before = tree_listing(pipeline.serving / "mlp" / str(served))
    pipeline.land(mlp_model, "mlp", 3)
    result = pipeline.run("mlp", served)

    assert result.state is JobState.SKIPPED
    assert result.reason is not None and "already published" in result.reason
    assert tree_listing(pipeline.serving / "mlp" / str(served)) == before
    assert [e[4] for e in pipeline.observer.events if e[0] == "finished"] == []


def test_a_corrupt_model_fails_with_the_reason_and_nothing_reaches_serving(
    pipeline: Pipeline, corrupt: Path
) -> None:
    served = served_version(1)
    pipeline.land(corrupt, "broken", 1)
    result = pipeline.run("broken", served)

    assert result.state is JobState.FAILED
    assert result.reason is not None and "TF1 Session loader" in result.reason
    assert result.published_path is None
    assert not (pipeline.serving / "broken").exists() or os.listdir(
        pipeline.serving / "broken") == []
    job = pipeline.journal.get("broken", served)
    assert job is not None and job.state is JobState.FAILED and job.reason == result.reason
    assert ("finished", "broken", served, JobState.CONVERTING, StageOutcome.FAILED) in (
        pipeline.observer.events)


def test_a_version_that_vanishes_mid_job_is_skipped_and_nothing_is_published(
    pipeline: Pipeline, mlp_model: Path
) -> None:
    source = pipeline.land(mlp_model, "mlp", 5)

    def remove_source(step: str) -> None:
        if step == "job-converting":
            shutil.rmtree(source)

    result = pipeline.run("mlp", served_version(5), checkpoint_hook=remove_source)

    assert result.state is JobState.SKIPPED
    assert result.reason is not None and "removed from incoming" in result.reason
    assert not (pipeline.serving / "mlp").exists() or os.listdir(pipeline.serving / "mlp") == []


def test_a_version_older_than_what_retention_keeps_is_skipped(
    pipeline: Pipeline, mlp_model: Path
) -> None:
    newer = [served_version(6), served_version(7)]
    for version in newer:
        pipeline.publisher().publish_copy("mlp", version, mlp_model)
    pipeline.land(mlp_model, "mlp", 5)
    result = pipeline.run("mlp", served_version(5), replace(ONE_BUILD, keep_versions=2))

    assert result.state is JobState.SKIPPED
    assert result.reason is not None and "retention would remove it" in result.reason
    assert sorted(os.listdir(pipeline.serving / "mlp")) == [str(v) for v in newer]
