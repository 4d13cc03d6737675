"""The XLA backend: an engine is the segment under `tf.function(jit_compile=True)`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf


def engine_function(native: Any, input_specs: Sequence[tf.TensorSpec]) -> Any:
    """A ConcreteFunction that XLA compiles once per distinct input shape."""

    def engine(*args: tf.Tensor) -> Any:
        return native(*args)

    return tf.function(engine, jit_compile=True, autograph=False).get_concrete_function(
        *input_specs
    )
