"""The precision policy's parts, on real replay objects and a real shape store: which
recorded requests INT8 calibrates on and which are held out for the accuracy check, what
an INT8 policy asks of the converter, how outputs are checked, and the policy's settings."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from sidecar.base.errors import ConfigError
from sidecar.config import ModelPolicy, load_settings
from sidecar.jobs import ReplayOrigin, SessionModel, SignatureSpec, choose_replay_inputs
from sidecar.jobs.precision_plan import plan_precision
from sidecar.jobs.replay import ReplayInputs
from sidecar.jobs.verify import AccuracyCheck, compare_outputs
from sidecar.publish.published_accuracy import AccuracyRecord
from sidecar.shapes import ShapeObservation, ShapeSet, ShapeStore, ShapeStoreSettings, TensorSpec
from sidecar.state import Flavour, JobState
from sidecar.tfserving.numbering import served_version
from sidecar.tfserving.warmup import predict_request_from_arrays
from tests.jobs.conftest import ONE_BUILD, Pipeline


def recorded_replay(tmp_path: Path, mlp_model: Path, count: int) -> ReplayInputs:
    """Replay inputs of the MLP from a real shape store holding ``count`` sampled requests,
    request i filled with the value i (so each is known by its values)."""
    with SessionModel.open(mlp_model, ["serve"]) as loaded:
        signature: SignatureSpec = loaded.signature("serving_default")
    with ShapeStore(tmp_path / "state", ShapeStoreSettings(), clock=time.time) as store:
        now = time.time()
        shapes = ShapeSet.of({"x": TensorSpec("DT_FLOAT", (2, 16))})
        store.record([ShapeObservation(
            "mlp", "serving_default", shapes, now, sample=predict_request_from_arrays(
                "mlp", {"x": np.full((2, 16), i, np.float32)}).SerializeToString())
            for i in range(count)])
        return choose_replay_inputs("mlp", signature, mlp_model, shape_source=store,
                                    max_shape_sets=4, default_batch_sizes=(1,))


def marks(feeds: object) -> list[int]:
    return [int(feed["x"][0, 0]) for feed in feeds]  # type: ignore[attr-defined]


def test_every_fifth_recorded_request_is_held_out_and_never_calibrated_on(
    tmp_path: Path, mlp_model: Path
) -> None:
    replay = recorded_replay(tmp_path, mlp_model, 12)
    assert replay.origin is ReplayOrigin.SHAPE_SOURCE
    assert marks(replay.samples) == list(range(12))  # every recorded request, oldest first
    assert replay.held_out_positions() == [4, 9]
    held, calibrating = marks(replay.held_out()), marks(replay.calibration_samples())
    assert held == [4, 9] and calibrating == [0, 1, 2, 3, 5, 6, 7, 8, 10, 11]

    plan = plan_precision("INT8", replay)
    assert plan.precision_mode == "INT8" and plan.calibration is not None
    given = marks(plan.calibration())  # what the converter's calibration_input_fn yields
    assert given == calibrating and not set(given) & set(held)
    assert "calibrated on 10 recorded request(s), 2 held out" in plan.reason


def test_fewer_than_five_requests_hold_out_the_newest_and_one_alone_cannot_calibrate(
    tmp_path: Path, mlp_model: Path
) -> None:
    three = recorded_replay(tmp_path / "three", mlp_model, 3)
    assert marks(three.held_out()) == [2] and marks(three.calibration_samples()) == [0, 1]

    one = recorded_replay(tmp_path / "one", mlp_model, 1)
    assert marks(one.held_out()) == [0] and one.calibration_samples() == ()
    plan = plan_precision("INT8", one)
    # INT8 is not tried, but the version is still converted with what INT8 allows besides.
    assert plan.precision_mode == "FP16" and plan.calibration is None
    assert "only 1 recorded request was sampled" in plan.reason
    assert plan_precision("FP32", one).precision_mode == "FP32"


def test_auto_checks_class_probabilities_by_top1_and_everything_else_by_scaled_error() -> None:
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((100, 10)).astype(np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    # One row in 100 flips its top-1 class; every value moves far beyond any tolerance.
    flipped = probabilities * 0.9 + 0.01  # rows still sum to 1
    top = int(np.argmax(flipped[7]))
    other = (top + 1) % 10
    flipped[7, [top, other]] = flipped[7, [other, top]]
    auto = AccuracyCheck("auto", max_scaled_error=1e-4, min_top1_agreement=0.99)

    checked = compare_outputs([{"p": flipped}], [{"p": probabilities}], auto)
    assert checked.top1_agreement == 0.99 and checked.top1_rows == 100 and checked.matches
    assert not compare_outputs([{"p": flipped}], [{"p": probabilities}], AccuracyCheck(
        "auto", 1e-4, min_top1_agreement=0.995)).matches
    # Logits or a [batch, 4] regression look alike: auto holds them to scaled error...
    moved = logits + 0.01
    assert compare_outputs([{"y": moved}], [{"y": logits}], auto).top1_agreement is None
    assert not compare_outputs([{"y": moved}], [{"y": logits}], auto).matches
    # ...top1 says they are class scores; scaled_error checks even probabilities by error.
    top1 = compare_outputs([{"y": moved}], [{"y": logits}], AccuracyCheck("top1", 1e-4, 0.99))
    assert top1.matches and top1.top1_agreement == 1.0
    by_error = compare_outputs([{"p": flipped}], [{"p": probabilities}],
                               AccuracyCheck("scaled_error", 1e-4, 0.99))
    assert by_error.top1_agreement is None and not by_error.matches
    # A rank-1 output is never class scores.
    vector = compare_outputs([{"v": logits[0] + 1}], [{"v": logits[0]}], AccuracyCheck(
        "top1", 1e-4, 0.99))
    assert vector.top1_agreement is None and "scaled error" in vector.describe()


def policy_from(tmp_path: Path, text: str) -> ModelPolicy:
    config = tmp_path / "sidecar.toml"
    config.write_text(text)
    return load_settings(None, {}, config).policy_for("digits")


def test_the_policy_takes_int8_with_the_default_backend_and_its_accuracy_settings(
    tmp_path: Path
) -> None:
    default = ModelPolicy()
    assert (default.precision, default.accuracy, default.min_top1_agreement,
            default.max_scaled_error) == ("FP32", "auto", 0.99, None)
    policy = policy_from(tmp_path, (
        '[policy]\nbackend = "xla"\n[models.digits]\nprecision = "int8"\n'
        'accuracy = "top1"\nmin_top1_agreement = 0.995\nmax_scaled_error = 0.1\n'))
    assert (policy.backend, policy.precision, policy.accuracy) == ("xla", "INT8", "top1")
    assert (policy.min_top1_agreement, policy.max_scaled_error) == (0.995, 0.1)
    assert load_settings(None, {"TFTRT_SIDECAR_MAX_SCALED_ERROR": ""}).default_policy == default


@pytest.mark.parametrize(("line", "named", "fix"), [
    ('accuracy = "top5"', "models.digits.accuracy", "'auto', 'top1', 'scaled_error'"),
    ("min_top1_agreement = 1.5", "models.digits.min_top1_agreement", "from 0 to 1"),
    ("max_scaled_error = -0.1", "models.digits.max_scaled_error", "e.g. 0.05"),
])
def test_a_bad_accuracy_setting_is_refused_naming_it_and_the_fix(
    tmp_path: Path, line: str, named: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        policy_from(tmp_path, f"[models.digits]\n{line}\n")
    message = str(refused.value)
    assert named in message and fix in message and "sidecar.toml" in message
    assert "\n" not in message


class _RandomScores(tf.Module):
    """Class scores that are mostly noise: their top-1 class changes from call to call."""

    @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        scores = tf.matmul(x, tf.ones((16, 8))) * 1e-3
        # Seeded by the clock's microseconds: a global seed set at export time (Keras sets
        # one) would fix an unseeded random op's values in every Session.
        seed = tf.cast(tf.math.floormod(tf.timestamp() * 1e6, 2.0**31), tf.int64)
        noise = tf.random.stateless_uniform(tf.shape(scores), tf.stack([seed, seed]), maxval=10.0)
        return {"scores": scores + noise}


def test_a_version_failing_top1_agreement_is_not_published_converted(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    module = _RandomScores()
    model = tmp_path / "random-scores"
    tf.saved_model.save(module, str(model), signatures={"serving_default": module.serve})
    pipeline.land(model, "scores", 1)
    result = pipeline.run("scores", served_version(1), replace(ONE_BUILD, accuracy="top1"))

    assert result.state is JobState.PUBLISHED and result.flavour is Flavour.ORIGINAL
    assert result.flavour_reason is not None
    assert "top-1 agreement" in result.flavour_reason
    assert "(output 'scores', 9 rows) against a minimum of 0.99" in result.flavour_reason
    published = pipeline.serving / "scores" / str(served_version(1))
    assert AccuracyRecord.read(published) is None  # not measured as a converted version
