"""Check what an `input_fn` yields against the signature, and name what is wrong."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import tensorflow as tf

from converter.errors import InputFnError

InputFn = Callable[[], Iterable[Any]]
"""A generator function yielding inputs (TF-TRT's `input_fn`)."""


def _as_mapping(item: Any, names: list[str], where: str) -> Mapping[str, Any]:
    if isinstance(item, Mapping):
        if set(item) != set(names):
            raise InputFnError(
                f"{where} yielded inputs {sorted(item)}; the signature takes {names}. "
                "Yield a dict with exactly those keys, or a tuple in that order."
            )
        return item
    values = list(item) if isinstance(item, (tuple, list)) else [item]
    if len(values) != len(names):
        raise InputFnError(
            f"{where} yielded {len(values)} tensor(s); the signature takes {len(names)} "
            f"({names}, in this order). Yield one value per input, or a dict by name."
        )
    return dict(zip(names, values, strict=True))


def _typed(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    return dtype is not None and getattr(dtype, "kind", "") != "O"


def bind_inputs(item: Any, specs: Mapping[str, tf.TensorSpec], where: str) -> dict[str, tf.Tensor]:
    """One yielded item as tensors by input name, checked for dtype and shape."""
    names = list(specs)
    given = _as_mapping(item, names, where)
    bound = {}
    for name in names:  # in the signature's order, whatever the dict's: callers pass them on
        value, spec = given[name], specs[name]
        # Arrays keep their dtype (a float64 array is an error, not a silent cast);
        # Python scalars and lists take the signature's.
        tensor = tf.convert_to_tensor(value, dtype_hint=None if _typed(value) else spec.dtype)
        if tensor.dtype != spec.dtype:
            raise InputFnError(
                f"{where}: input {name!r} has dtype {tensor.dtype.name}; the signature "
                f"expects {spec.dtype.name}. Cast it, e.g. np.asarray(x, '{spec.dtype.name}')."
            )
        if spec.shape.rank is not None and tensor.shape.rank != spec.shape.rank:
            raise InputFnError(
                f"{where}: input {name!r} has rank {tensor.shape.rank} (shape "
                f"{tensor.shape}); the signature expects rank {spec.shape.rank} ({spec.shape})."
            )
        if not spec.shape.is_compatible_with(tensor.shape):
            raise InputFnError(
                f"{where}: input {name!r} has shape {tensor.shape}; the signature expects "
                f"{spec.shape} (None matches any size)."
            )
        bound[name] = tensor
    return bound


def iterate_inputs(
    input_fn: Callable[[], Iterable[Any]], specs: Mapping[str, tf.TensorSpec], where: str
) -> Iterable[dict[str, tf.Tensor]]:
    """Each item `input_fn()` yields, bound and checked."""
    if not callable(input_fn):
        raise InputFnError(
            f"{where} must be a callable that returns an iterable of inputs "
            f"(a generator function); got {type(input_fn).__name__}."
        )
    count = 0
    for item in input_fn():
        count += 1
        yield bind_inputs(item, specs, f"{where} item {count}")
    if count == 0:
        raise InputFnError(f"{where} yielded nothing; yield at least one input.")
