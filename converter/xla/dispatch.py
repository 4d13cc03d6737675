"""In-graph dispatch: a prebuilt input shape runs its engine, others the fallback."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from converter.params import Fallback

ShapeSet = tuple[tuple[int, ...], ...]
"""The shapes of a segment's shape-selecting inputs, in input order."""


@dataclasses.dataclass(frozen=True)
class DispatchPlan:
    """How one segment chooses between its engine and its native ops."""

    prebuilt: tuple[ShapeSet, ...]
    fallback: Fallback


def _matches_any(args: Sequence[tf.Tensor], shape_inputs: Sequence[int],
                 prebuilt: Sequence[ShapeSet]) -> tf.Tensor:
    actual = tf.concat([tf.shape(args[i], out_type=tf.int64) for i in shape_inputs], axis=0)
    table = tf.constant(
        [[dim for shape in shape_set for dim in shape] for shape_set in prebuilt], dtype=tf.int64
    )
    return tf.reduce_any(tf.reduce_all(tf.equal(actual[tf.newaxis, :], table), axis=1))


def dispatch_function(
    name: str,
    input_specs: Sequence[tf.TensorSpec],
    shape_inputs: Sequence[int],
    engine: Callable[..., Any],
    native: Callable[..., Any],
    plan: DispatchPlan,
) -> Any:
    """A ConcreteFunction that runs `engine` on prebuilt shapes, else the fallback."""
    fallback = engine if plan.fallback is Fallback.ENGINE else native

    def run(*args: tf.Tensor) -> Any:
        if not plan.prebuilt:
            return fallback(*args)
        if not shape_inputs:  # only weights feed it: every call has the prebuilt shapes
            return engine(*args)
        return tf.cond(
            _matches_any(args, shape_inputs, plan.prebuilt),
            lambda: engine(*args),
            lambda: fallback(*args),
        )

    run.__name__ = name
    return tf.function(run, autograph=False).get_concrete_function(*input_specs)
