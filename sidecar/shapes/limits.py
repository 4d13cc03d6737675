"""Decide whether a shape set is within `ShapeLimits`, and say why not."""

from __future__ import annotations

import enum

from sidecar.config.shape_store import ShapeLimits
from sidecar.shapes.shape_set import ShapeSet


class Refusal(enum.Enum):
    """Why a shape set was not stored."""

    RANK = "rank"
    DIMENSION = "dimension"
    ELEMENTS = "elements"
    INPUTS = "inputs"
    NEGATIVE = "negative"
    TOO_MANY_SHAPE_SETS = "too_many_shape_sets"


def refusal_for(shape_set: ShapeSet, limits: ShapeLimits) -> Refusal | None:
    """The first limit `shape_set` breaks, or None when it may be stored."""
    if len(shape_set) > limits.max_inputs:
        return Refusal.INPUTS
    for _, spec in shape_set.specs:
        if len(spec.shape) > limits.max_rank:
            return Refusal.RANK
        if any(size < 0 for size in spec.shape):
            return Refusal.NEGATIVE
        if any(size > limits.max_dimension for size in spec.shape):
            return Refusal.DIMENSION
        if spec.elements > limits.max_elements:
            return Refusal.ELEMENTS
    return None
