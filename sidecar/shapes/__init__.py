"""The durable shape store: which request shapes real traffic has, and what covers it.

Public API: `ShapeStore`, its `ShapeStoreSettings` and `ShapeLimits`, the value types
`TensorSpec`, `ShapeSet`, `ShapeObservation`, the results `TopShapeSets`,
`ShapeSetCount`, `Coverage`, `StoredSample`, `Refusal`, and the errors.
"""

from __future__ import annotations

from sidecar.config.shape_store import ShapeLimits, ShapeStoreSettings
from sidecar.shapes.coverage import (
    Coverage,
    ShapeSetCount,
    TopShapeSets,
    coverage_of,
    rank_shape_sets,
)
from sidecar.shapes.errors import (
    ShapeStoreCorruptError,
    ShapeStoreError,
    ShapeStoreWriteError,
)
from sidecar.shapes.limits import Refusal, refusal_for
from sidecar.shapes.recorded import RecordedShapes
from sidecar.shapes.samples import SAMPLED_METHODS, StoredSample
from sidecar.shapes.shape_set import ANY_DIMENSION, ShapeObservation, ShapeSet, TensorSpec
from sidecar.shapes.store import MAX_WARMUP_RECORDS, ShapeStore

__all__ = [
    "ANY_DIMENSION",
    "MAX_WARMUP_RECORDS",
    "SAMPLED_METHODS",
    "Coverage",
    "RecordedShapes",
    "Refusal",
    "ShapeLimits",
    "ShapeObservation",
    "ShapeSet",
    "ShapeSetCount",
    "ShapeStore",
    "ShapeStoreCorruptError",
    "ShapeStoreError",
    "ShapeStoreSettings",
    "ShapeStoreWriteError",
    "StoredSample",
    "TensorSpec",
    "TopShapeSets",
    "coverage_of",
    "rank_shape_sets",
    "refusal_for",
]
