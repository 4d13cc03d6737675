"""Inputs made up from a signature's specs, for building engines of given shapes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from converter.errors import InputFnError

Shape = tuple[int, ...]


def parse_shape(text: str) -> Shape:
    """"8x224x224x3" -> (8, 224, 224, 3); "scalar" -> ()."""
    if text in ("scalar", ""):
        return ()
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise InputFnError(
            f"shape {text!r} is not of the form 8x224x224x3 (sizes joined by 'x')"
        ) from None
    if any(d <= 0 for d in shape):
        raise InputFnError(f"shape {text!r} has a size below 1; every size must be positive")
    return shape


def _array(spec: tf.TensorSpec, shape: Shape, rng: np.random.Generator) -> np.ndarray:
    if spec.dtype == tf.string:
        words = np.array([b"alpha", b"beta", b"gamma", b"delta"], dtype=object)
        return rng.choice(words, size=shape)
    if spec.dtype == tf.bool:
        return rng.integers(0, 2, size=shape).astype(bool)
    numpy_dtype = spec.dtype.as_numpy_dtype
    if spec.dtype.is_integer:
        return rng.integers(0, 4, size=shape).astype(numpy_dtype)
    return rng.standard_normal(size=shape).astype(numpy_dtype)


def synthetic_input_fn(
    specs: Mapping[str, tf.TensorSpec],
    shapes: Mapping[str, Sequence[Shape]],
    seed: int = 0,
) -> Callable[[], Iterator[dict[str, np.ndarray]]]:
    """An input_fn yielding one input per position in each `shapes` list.

    Inputs missing from `shapes` take their signature shape; any unknown size
    there is filled from the batch size of the first given input."""
    unknown = sorted(set(shapes) - set(specs))
    if unknown:
        raise InputFnError(f"shapes given for {unknown}, which are not inputs; the "
                           f"signature's inputs are {sorted(specs)}")
    counts = {len(v) for v in shapes.values()}
    if len(counts) > 1:
        raise InputFnError("every input needs the same number of shapes; got " +
                           ", ".join(f"{k}: {len(v)}" for k, v in shapes.items()))
    count = counts.pop() if counts else 0

    def shape_at(name: str, position: int) -> Shape:
        if name in shapes:
            shape = tuple(shapes[name][position])
            if not specs[name].shape.is_compatible_with(shape):
                raise InputFnError(f"shape {shape} for input {name!r} does not fit the "
                                   f"signature's {specs[name].shape}")
            return shape
        batch = next(iter(shapes.values()))[position][0] if shapes else 1
        return tuple(batch if d is None else d for d in specs[name].shape.as_list())

    def input_fn() -> Iterator[dict[str, np.ndarray]]:
        rng = np.random.default_rng(seed)
        for position in range(count):
            yield {name: _array(spec, shape_at(name, position), rng)
                   for name, spec in specs.items()}

    return input_fn


def batch_input_fn(
    specs: Mapping[str, tf.TensorSpec], batch_sizes: Sequence[int], seed: int = 0
) -> Callable[[], Iterator[dict[str, np.ndarray]]]:
    """An input_fn yielding one input per batch size; other unknown sizes become 1."""
    shapes = {
        name: [tuple(batch if i == 0 and d is None else (d or 1)
                     for i, d in enumerate(spec.shape.as_list() or []))
               for batch in batch_sizes]
        for name, spec in specs.items() if spec.shape.rank is not None
    }
    return synthetic_input_fn(specs, shapes, seed)
