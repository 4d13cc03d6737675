"""Choosing replay inputs (by priority), comparing outputs, and the order jobs run in."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from sidecar.jobs import (
    JobQueue,
    ModelLoadError,
    ReplayInputs,
    ReplayOrigin,
    SessionModel,
    SignatureError,
    SignatureSpec,
    choose_replay_inputs,
    compare_outputs,
    next_in_turn,
)
from sidecar.shapes import ShapeObservation, ShapeSet, ShapeStore, ShapeStoreSettings, TensorSpec
from sidecar.state import JobJournal, JobState
from sidecar.tfserving.warmup import predict_request_from_arrays, write_warmup_file
from tests.support.clock import ManualClock


def signature_of(model: Path) -> SignatureSpec:
    with SessionModel.open(model, ["serve"]) as loaded:
        return loaded.signature("serving_default")


def test_defaults_then_the_models_warmup_then_recorded_shapes(
    tmp_path: Path, mlp_model: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(mlp_model, model)
    signature = signature_of(model)
    assert list(signature.inputs) == ["x"]

    with ShapeStore(tmp_path / "state", ShapeStoreSettings(), clock=time.time) as store:
        def choose() -> ReplayInputs:
            return choose_replay_inputs(
                "mlp", signature, model, shape_source=store, max_shape_sets=2,
                default_batch_sizes=(2, 4),
            )

        defaults = choose()
        assert defaults.origin is ReplayOrigin.DEFAULT_BATCHES
        assert [feed["x"].shape for feed in defaults.inputs] == [(2, 16), (4, 16)]
        assert "no recorded request shapes" in defaults.note

        own = [predict_request_from_arrays("mlp", {"x": np.ones((b, 16), np.float32)})
               for b in (7, 7, 1)]
        write_warmup_file(model, own)
        warmup = choose()
        assert warmup.origin is ReplayOrigin.MODEL_WARMUP
        assert [feed["x"].shape[0] for feed in warmup.inputs] == [7, 7, 1]
        assert warmup.verify_positions(2) == [0, 2]  # one per shape set first
        # A warmup file's requests are not taken for real traffic: nothing to calibrate on.
        assert warmup.samples == () and list(warmup.calibration_fn()()) == []

        # Shapes of another model version's inputs do not fit this signature: ignored.
        now = time.time()
        stale = ShapeSet.of({"features": TensorSpec("DT_FLOAT", (3, 16))})
        store.record([ShapeObservation("mlp", "serving_default", stale, now)])
        assert choose().origin is ReplayOrigin.MODEL_WARMUP

        fits = [ShapeSet.of({"x": TensorSpec("DT_FLOAT", (b, 16))}) for b in (9, 3, 5)]
        store.record([ShapeObservation("mlp", "serving_default", s, now)
                      for s, n in zip(fits, (4, 3, 1), strict=True) for _ in range(n)])
        recorded = choose()
        assert recorded.origin is ReplayOrigin.SHAPE_SOURCE
        assert [feed["x"].shape for feed in recorded.inputs] == [(9, 16), (3, 16)]  # top 2


def test_the_session_loader_names_what_is_wrong(
    tmp_path: Path, mlp_model: Path, corrupt: Path
) -> None:
    with pytest.raises(ModelLoadError, match="TF1 Session loader"), SessionModel.open(
        corrupt, ["serve"]
    ):
        pass
    with pytest.raises(ModelLoadError), SessionModel.open(mlp_model, ["gpu"]):
        pass
    with SessionModel.open(mlp_model, ["serve"]) as loaded, pytest.raises(
        SignatureError, match="no signature 'predict'"
    ):
        loaded.signature("predict")


def test_compare_outputs() -> None:
    want = [{"y": np.array([1.0, 2.0], np.float32), "k": np.array([3])}]
    close = [{"y": np.array([1.0, 2.0001], np.float32), "k": np.array([3])}]
    assert compare_outputs(close, want, 1e-4).matches
    assert not compare_outputs(close, want, 1e-6).matches
    wrong_int = [{"y": want[0]["y"], "k": np.array([4])}]
    assert compare_outputs(wrong_int, want, 1.0).exact_mismatch
    wrong_shape = [{"y": np.array([1.0], np.float32), "k": np.array([3])}]
    assert not compare_outputs(wrong_shape, want, 1.0).matches
    nan = [{"y": np.array([np.nan, 2.0], np.float32), "k": np.array([3])}]
    assert not compare_outputs(nan, want, 1.0).matches


def test_newest_version_first_and_models_take_turns(tmp_path: Path) -> None:
    clock = ManualClock()
    with JobJournal.open(tmp_path, clock=clock) as journal:
        for model, version in [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2)]:
            journal.discover(model, version)
            clock.advance(1)
        queue = JobQueue(journal)
        order: list[tuple[str, int]] = []
        while (job := queue.take()) is not None:
            order.append((job.model, job.version))
            journal.advance(job.model, job.version, JobState.SKIPPED, reason="taken by the test")
    assert order == [("a", 3), ("b", 2), ("a", 2), ("b", 1), ("a", 1)]
    assert next_in_turn([], None) is None
