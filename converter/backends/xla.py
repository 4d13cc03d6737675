"""The XLA backend: an engine is the segment under `tf.function(jit_compile=True)`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf


def _traced(body: Any, input_specs: Sequence[tf.TensorSpec], jit_compile: bool) -> Any:
    def call(*args: tf.Tensor) -> Any:
        return body(*args)

    return tf.function(call, jit_compile=jit_compile, autograph=False).get_concrete_function(
        *input_specs
    )


def engine_function(body: Any, input_specs: Sequence[tf.TensorSpec]) -> Any:
    """A ConcreteFunction that XLA compiles once per distinct input shape."""
    return _traced(body, input_specs, jit_compile=True)


def native_function(body: Any, input_specs: Sequence[tf.TensorSpec]) -> Any:
    """The same call path without compilation, so timings compare like with like."""
    return _traced(body, input_specs, jit_compile=False)
