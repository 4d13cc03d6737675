"""A model without `serving_default`: the job converts the signature real traffic
calls most, or publishes the original saying why."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from sidecar.shapes import ShapeObservation, ShapeSet, ShapeStore, ShapeStoreSettings, TensorSpec
from sidecar.state import Flavour, JobState
from sidecar.tfserving.numbering import served_version
from sidecar.tfserving.warmup import read_predict_requests
from tests.jobs.conftest import Pipeline


class _TwoHeads(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(14)
        self.w = tf.Variable(rng.standard_normal((16, 8)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="x")])
    def score(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": tf.nn.softmax(tf.nn.relu(tf.matmul(x, self.w) + 1.0) * 2.0)}

    @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="x")])
    def embed(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"e": tf.tanh(tf.matmul(x, self.w) * 0.5)}


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("two-heads") / "model"
    module = _TwoHeads()
    tf.saved_model.save(module, str(directory),
                        signatures={"score": module.score, "embed": module.embed})
    return directory


def test_the_busiest_signature_is_converted(pipeline: Pipeline, two_heads: Path) -> None:
    pipeline.land(two_heads, "heads", 1)
    now = time.time()
    with ShapeStore(pipeline.root / "state", ShapeStoreSettings(), clock=time.time) as store:
        def seen(signature: str) -> ShapeObservation:
            shapes = ShapeSet.of({"x": TensorSpec("DT_FLOAT", (4, 16))})
            return ShapeObservation("heads", signature, shapes, now)

        store.record([seen("embed")] * 5 + [seen("score")] * 2)
        pipeline.shape_source = store
        result = pipeline.run("heads", served_version(1))

    assert result.state is JobState.PUBLISHED, result.reason
    published = pipeline.serving / "heads" / str(served_version(1))
    report = json.loads((published / "assets.extra/tftrt/conversion.json").read_text())
    assert report["signature"] == "embed"
    assert {r.model_spec.signature_name for r in read_predict_requests(published)} == {"embed"}


def test_without_traffic_the_original_is_published_saying_why(
        pipeline: Pipeline, two_heads: Path) -> None:
    pipeline.land(two_heads, "heads", 1)
    result = pipeline.run("heads", served_version(1))
    assert result.state is JobState.PUBLISHED and result.flavour is Flavour.ORIGINAL
    assert result.flavour_reason is not None
    assert "no signature 'serving_default'" in result.flavour_reason
    assert "no traffic is recorded" in result.flavour_reason
