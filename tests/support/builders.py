"""Test-only helpers shared by the job, service and e2e tests: model builders, landing
versions the way a deployment tool does (complete, by rename), a recording observer."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from converter import ConversionParams, ConversionReport
from sidecar.jobs import ConverterLike, JobResult, StageOutcome, default_converter_factory
from sidecar.state import JobState
from sidecar.tfserving.warmup import read_predict_requests


class _NoisyModel(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(11)
        self.w = tf.Variable(rng.standard_normal((16, 8)).astype(np.float32))
        self.b = tf.Variable(rng.standard_normal((8,)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        hidden = tf.nn.relu(tf.matmul(x, self.w) + self.b)
        # The clock's sub-millisecond digits: different in every run and every process
        # (seeded random ops are not: a global seed set at export time fixes them).
        noise = tf.cast(tf.math.floormod(tf.timestamp() * 1e4, 1.0), tf.float32) * 10.0
        return {"y": hidden + noise}


def noisy_model(directory: Path) -> Path:
    """A model whose output is not a function of its input (it adds the clock's noise):
    no conversion of it can ever be verified against the original."""
    module = _NoisyModel()
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return directory


class _HalfPlusTwo(tf.Module):
    """TF Serving's TF2 test model (``saved_model_half_plus_two.py``, ``HalfPlusTwoModel``):
    variables a, b, c, an asset ``foo.txt``, and ``y = a * x + b`` as serving_default."""

    def __init__(self, assets: Path) -> None:
        super().__init__()
        self.a = tf.Variable(0.5, name="a")
        self.b = tf.Variable(2.0, name="b")
        self.c = tf.Variable(3.0, name="c")
        assets.mkdir(parents=True, exist_ok=True)
        (assets / "foo.txt").write_text("asset-file-contents")
        self.asset = tf.saved_model.Asset(str(assets / "foo.txt"))

    @tf.function(input_signature=[tf.TensorSpec(shape=[1], dtype=tf.float32)])
    def predict(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": tf.add(tf.multiply(self.a, x), self.b)}


def half_plus_two(directory: Path) -> Path:
    """A copy of TF Serving's ``saved_model_half_plus_two_tf2_cpu`` model (its predict
    signature), saved at ``directory``."""
    module = _HalfPlusTwo(directory.with_name(f"{directory.name}-assets"))
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.predict})
    return directory


def corrupt_copy(source: Path, directory: Path) -> Path:
    """A copy of ``source`` whose ``saved_model.pb`` is garbage."""
    shutil.copytree(source, directory)
    (directory / "saved_model.pb").write_bytes(b"this is not a SavedModel protobuf" * 8)
    return directory


def land(source: Path, incoming: Path, model: str, version: int | str) -> Path:
    """Copy ``source`` beside incoming/<model>/ and rename it in, complete at once (a name
    such as ``"00000123"`` lands under that very name)."""
    model_dir = incoming / model
    model_dir.mkdir(parents=True, exist_ok=True)
    hidden = model_dir / f".landing-{version}"
    shutil.copytree(source, hidden)
    target = model_dir / str(version)
    os.rename(hidden, target)
    return target


class RecordingObserver:
    """A JobObserver that keeps every call, for assertions."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int, JobState, StageOutcome | None]] = []
        self.results: list[JobResult] = []

    def stage_started(self, model: str, version: int, stage: JobState) -> None:
        self.events.append(("started", model, version, stage, None))

    def stage_finished(
        self, model: str, version: int, stage: JobState, seconds: float, outcome: StageOutcome
    ) -> None:
        assert seconds >= 0
        self.events.append(("finished", model, version, stage, outcome))

    def job_finished(self, result: JobResult) -> None:
        self.results.append(result)

    def internal_error(self, model: str, version: int, stage: JobState) -> None:
        self.events.append(("internal-error", model, version, stage, None))


class BuildWithABug:
    """TEST-ONLY: the real converter with a bug planted in ``build()`` (an error nothing
    raises on purpose), to see what the job does with its own bugs."""

    def __init__(self, real: ConverterLike) -> None:
        self._real = real

    def convert(self, calibration_input_fn: Callable[[], Iterable[Any]] | None = None) -> Any:
        return self._real.convert(calibration_input_fn)

    def build(self, input_fn: Callable[[], Iterable[Any]]) -> None:
        raise KeyError("a planted bug")

    def save(self, output_saved_model_dir: str | Path) -> None:
        self._real.save(output_saved_model_dir)

    def report(self) -> ConversionReport:
        return self._real.report()


def converter_with_a_bug(source: Path, tags: Sequence[str], key: str,
                         params: ConversionParams) -> ConverterLike:
    """A :data:`~sidecar.jobs.ConverterFactory` making :class:`BuildWithABug` converters."""
    return BuildWithABug(default_converter_factory(source, tags, key, params))


def warmup_batches(version_dir: Path) -> list[int]:
    """The batch size of each warmup request of a published version, in file order."""
    return [int(tf.make_ndarray(request.inputs["x"]).shape[0])
            for request in read_predict_requests(version_dir)]
