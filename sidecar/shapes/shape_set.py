"""Value types for request shapes: one tensor's spec, a request's shape set, an observation.

A *shape set* is what one request fed to one signature: input name -> (dtype,
shape). Engines are built per shape set, so the shape store counts them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

# A dimension of -1 in a prebuilt shape set matches any size (a dynamic dimension).
ANY_DIMENSION = -1


@dataclass(frozen=True, order=True)
class TensorSpec:
    """The dtype and shape of one input tensor.

    `dtype` is TF's enum name (`"DT_FLOAT"`); `shape` lists every dimension, `()` for a scalar.
    """

    dtype: str
    shape: tuple[int, ...]

    @property
    def elements(self) -> int:
        """Number of elements, 1 for a scalar."""
        count = 1
        for size in self.shape:
            count *= size
        return count

    def matches(self, observed: TensorSpec) -> bool:
        """True when `observed` fits this spec (`ANY_DIMENSION` matches any size)."""
        if self.dtype != observed.dtype or len(self.shape) != len(observed.shape):
            return False
        return all(
            mine in (ANY_DIMENSION, theirs)
            for mine, theirs in zip(self.shape, observed.shape, strict=True)
        )


@dataclass(frozen=True)
class ShapeSet(Mapping[str, TensorSpec]):
    """An immutable mapping input name -> `TensorSpec`, with a canonical text key."""

    specs: tuple[tuple[str, TensorSpec], ...]

    @classmethod
    def of(cls, specs: Mapping[str, TensorSpec]) -> ShapeSet:
        """Build a shape set from any mapping; the order of inputs does not matter."""
        return cls(tuple(sorted(specs.items())))

    def __getitem__(self, name: str) -> TensorSpec:
        for key, spec in self.specs:
            if key == name:
                return spec
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def text(self) -> str:
        """``x:DT_FLOAT[8x16], y:...`` for people (``?`` for any size)."""
        def dims(shape: tuple[int, ...]) -> str:
            return "x".join("?" if d == ANY_DIMENSION else str(d) for d in shape)

        return ", ".join(f"{name}:{spec.dtype}[{dims(spec.shape)}]" for name, spec in self.specs)

    def key(self) -> str:
        """Canonical JSON text; equal shape sets have equal keys."""
        return json.dumps(
            [[name, spec.dtype, list(spec.shape)] for name, spec in self.specs],
            separators=(",", ":"),
        )

    @classmethod
    def from_key(cls, key: str) -> ShapeSet:
        """Inverse of `key()`."""
        rows = json.loads(key)
        return cls(tuple((name, TensorSpec(dtype, tuple(shape))) for name, dtype, shape in rows))

    def matches(self, observed: ShapeSet) -> bool:
        """True when `observed` has the same inputs and each fits this set's spec."""
        if len(self.specs) != len(observed.specs):
            return False
        return all(
            name == seen_name and spec.matches(seen_spec)
            for (name, spec), (seen_name, seen_spec) in zip(self.specs, observed.specs, strict=True)
        )


@dataclass(frozen=True)
class ShapeObservation:
    """One request as the tap saw it, ready for the shape store.

    `method` is the PredictionService method (`"Predict"`, `"Classify"`, ...).
    `sample` holds the serialized request when the tap sampled it, else None.
    `weight` is how many calls it stands for: 1 / the share of calls Envoy mirrored.
    """

    model: str
    signature: str
    shape_set: ShapeSet
    received_at: float
    method: str = "Predict"
    version: int | None = None
    version_label: str | None = None
    sample: bytes | None = field(default=None, repr=False)
    weight: int = 1
