"""The inputs a job replays: built into engines, verified on, and written as warmup requests.

Priority: the request shapes real traffic had (a :class:`ShapeSource`, e.g. the
tap's shape store, once it has any for the model and signature); else the raw
version's own TF Serving warmup file; else the signature's shapes with the
policy's default batch sizes.

Beside them, the recorded requests themselves (the shape source's samples that fit the
signature): the only inputs known to be real traffic. Every :data:`HOLD_OUT_EVERY`-th of
them (at least one) is held out: the accuracy check runs on those, INT8 calibrates on the
rest, so a version is never judged on what it was calibrated on. A warmup file's requests
are not taken for real traffic: they are often zeros or made-up values, and ranges
calibrated (and accuracy checked) on them say nothing about production.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from converter import batch_input_fn, synthetic_input_fn
from sidecar.base.errors import WarmupError
from sidecar.jobs.session_model import Arrays, SignatureSpec
from sidecar.shapes import ShapeSet, TensorSpec, TopShapeSets
from sidecar.tfserving.warmup import (
    MAX_WARMUP_RECORDS,
    predict_request_from_arrays,
    read_predict_requests,
)

HOLD_OUT_EVERY: Final = 5
"""One recorded request in this many is held out of calibration for the accuracy check."""


class ShapeSource(Protocol):
    """Where recorded request shapes come from; :class:`sidecar.shapes.ShapeStore` is one."""

    def top_shape_sets(self, model: str, signature: str, limit: int) -> TopShapeSets:
        """The at most ``limit`` shape sets that carried the most recent traffic."""
        ...

    def predict_requests(self, model: str, signature: str | None = None) -> list[Any]:
        """Sampled ``PredictRequest`` protos of ``model`` (one signature), oldest first."""
        ...


class ReplayOrigin(enum.Enum):
    """Where a job's replay inputs came from."""

    SHAPE_SOURCE = "shape-source"
    """The most frequent shape sets of recorded traffic (sampled values where kept)."""

    MODEL_WARMUP = "model-warmup"
    """The Predict requests of the raw version's own warmup file."""

    DEFAULT_BATCHES = "default-batch-sizes"
    """The signature's shapes with the policy's default batch sizes, random values."""


@dataclass(frozen=True)
class ReplayInputs:
    """Inputs for one signature, all fitting it, at most TF Serving's 1000 warmup records."""

    origin: ReplayOrigin
    """Where they came from."""

    inputs: tuple[Arrays, ...]
    """Each a feed for the signature: input name -> array."""

    note: str
    """Why earlier sources were not used (empty when the first one was)."""

    samples: tuple[Arrays, ...] = ()
    """The recorded requests that fit the signature, oldest first (real traffic; empty
    unless the inputs came from the shape source)."""

    def input_fn(self) -> Callable[[], Iterator[Arrays]]:
        """A generator function for ``Converter.build``."""
        inputs = self.inputs

        def replay() -> Iterator[Arrays]:
            yield from inputs

        return replay

    def held_out_positions(self) -> list[int]:
        """Positions in :attr:`samples` held out of calibration for the accuracy check:
        every :data:`HOLD_OUT_EVERY`-th, or the newest when there are fewer."""
        every = [p for p in range(len(self.samples)) if p % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1]
        return every or ([len(self.samples) - 1] if self.samples else [])

    def held_out(self) -> tuple[Arrays, ...]:
        """The held-out recorded requests (never given to calibration)."""
        return tuple(self.samples[p] for p in self.held_out_positions())

    def calibration_samples(self) -> tuple[Arrays, ...]:
        """The recorded requests INT8 may calibrate on: all but the held-out ones."""
        held = set(self.held_out_positions())
        return tuple(feed for p, feed in enumerate(self.samples) if p not in held)

    def calibration_fn(self) -> Callable[[], Iterator[Arrays]]:
        """A generator function for INT8 calibration (``Converter.convert``): the
        :meth:`calibration_samples`."""
        inputs = self.calibration_samples()

        def calibrate() -> Iterator[Arrays]:
            yield from inputs

        return calibrate

    def verify_positions(self, limit: int) -> list[int]:
        """At most ``limit`` positions in :attr:`inputs` to verify on: one per distinct
        shape set first, then the rest in order."""
        firsts: dict[tuple[tuple[str, tuple[int, ...]], ...], int] = {}
        for position, feed in enumerate(self.inputs):
            firsts.setdefault(_shape_key(feed), position)
        order = list(firsts.values())
        chosen = set(order)
        order += [p for p in range(len(self.inputs)) if p not in chosen]
        return order[:limit]

    def predict_requests(self, model: str, signature: str) -> list[Any]:
        """Each input as a ``PredictRequest`` to ``signature`` (for the warmup file)."""
        return [
            predict_request_from_arrays(model, feed, signature_name=signature)
            for feed in self.inputs
        ]


def choose_replay_inputs(
    model: str,
    signature: SignatureSpec,
    version_dir: Path,
    *,
    shape_source: ShapeSource | None,
    max_shape_sets: int,
    default_batch_sizes: Sequence[int],
) -> ReplayInputs:
    """Replay inputs for ``signature`` of ``model``, from the best source that has some.

    Raises the converter's InputFnError if the signature's shapes cannot be filled in.
    """
    notes: list[str] = []
    if shape_source is not None:
        recorded, samples = _from_shape_source(model, signature, shape_source, max_shape_sets)
        if recorded:
            return ReplayInputs(ReplayOrigin.SHAPE_SOURCE, tuple(recorded), "", tuple(samples))
        notes.append("no recorded request shapes fit the signature")
    else:
        notes.append("no shape source")
    try:
        warmup = _from_warmup_file(signature, version_dir)
    except WarmupError as exc:
        warmup = []
        notes.append(f"the version's warmup file is unreadable ({exc.what})")
    if warmup:
        return ReplayInputs(ReplayOrigin.MODEL_WARMUP, tuple(warmup), "; ".join(notes))
    notes.append("no usable Predict requests in the version's warmup file")
    generate = batch_input_fn(signature.inputs, list(default_batch_sizes))
    generated = [dict(feed) for feed in generate()]
    return ReplayInputs(ReplayOrigin.DEFAULT_BATCHES, tuple(generated), "; ".join(notes))


def _from_shape_source(
    model: str, signature: SignatureSpec, source: ShapeSource, limit: int
) -> tuple[list[Arrays], list[Arrays]]:
    """(one input per top shape set, a sample where one was kept; the samples that fit)."""
    top = source.top_shape_sets(model, signature.key, limit)
    wanted = [s for s in top.shape_sets if _shape_set_fits(s, signature.inputs)]
    if not wanted:
        return [], []
    samples: list[Arrays] = []
    sampled: dict[str, Arrays] = {}
    for request in source.predict_requests(model, signature.key):
        feed = _arrays(request)
        if feed is not None and _fits(feed, signature.inputs):
            samples.append(feed)
            sampled.setdefault(_shape_set_of(feed).key(), feed)
    chosen: list[Arrays] = []
    missing: list[ShapeSet] = []
    for shape_set in wanted:
        if shape_set.key() in sampled:
            chosen.append(sampled[shape_set.key()])
        else:
            missing.append(shape_set)
    if missing:
        shapes = {name: [tuple(s[name].shape) for s in missing] for name in signature.inputs}
        chosen += [dict(feed) for feed in synthetic_input_fn(signature.inputs, shapes)()]
    return chosen, samples


def _from_warmup_file(signature: SignatureSpec, version_dir: Path) -> list[Arrays]:
    accepted = {signature.key} | ({""} if signature.key == "serving_default" else set())
    found: list[Arrays] = []
    for request in read_predict_requests(version_dir):
        if request.model_spec.signature_name not in accepted:
            continue
        feed = _arrays(request)
        if feed is not None and _fits(feed, signature.inputs):
            found.append(feed)
        if len(found) == MAX_WARMUP_RECORDS:
            break
    return found


def _arrays(request: Any) -> Arrays | None:
    try:
        return {name: np.asarray(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
    except (TypeError, ValueError):
        return None


def _fits(feed: Mapping[str, np.ndarray], specs: Mapping[str, tf.TensorSpec]) -> bool:
    if set(feed) != set(specs):
        return False
    for name, value in feed.items():
        spec = specs[name]
        if spec.dtype == tf.string:
            if value.dtype.kind not in "OSU":
                return False
        elif value.dtype.kind in "OSUV" or tf.as_dtype(value.dtype) != spec.dtype:
            return False
        if not spec.shape.is_compatible_with(value.shape):
            return False
    return True


def _shape_set_fits(shape_set: ShapeSet, specs: Mapping[str, tf.TensorSpec]) -> bool:
    if set(shape_set) != set(specs):
        return False
    return all(
        shape_set[name].dtype == _dtype_name(spec.dtype)
        and all(size >= 0 for size in shape_set[name].shape)
        and spec.shape.is_compatible_with(shape_set[name].shape)
        for name, spec in specs.items()
    )


def _shape_set_of(feed: Mapping[str, np.ndarray]) -> ShapeSet:
    return ShapeSet.of({
        name: TensorSpec(
            "DT_STRING" if value.dtype.kind in "OSU" else _dtype_name(tf.as_dtype(value.dtype)),
            tuple(int(size) for size in value.shape),
        )
        for name, value in feed.items()
    })


def _dtype_name(dtype: tf.DType) -> str:
    return str(types_pb2.DataType.Name(dtype.as_datatype_enum))


def _shape_key(feed: Mapping[str, np.ndarray]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple(sorted((name, tuple(np.shape(value))) for name, value in feed.items()))
