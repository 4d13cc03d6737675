"""Settings of the shape store: the window, hostile-shape limits and sample budgets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sidecar.shapes.errors import ShapeStoreSettingsError


@dataclass(frozen=True)
class ShapeLimits:
    """Shapes beyond these limits are refused (counted, never stored or built)."""

    max_elements: int = 1 << 26
    """Largest number of elements in one input tensor."""
    max_dimension: int = 1 << 20
    """Largest size of any single dimension."""
    max_rank: int = 8
    """Largest number of dimensions of one input tensor."""
    max_inputs: int = 64
    """Largest number of input tensors in one request."""

    def __post_init__(self) -> None:
        for name in ("max_elements", "max_dimension", "max_rank", "max_inputs"):
            if getattr(self, name) < 1:
                raise ShapeStoreSettingsError(
                    f"ShapeLimits.{name} must be at least 1, got {getattr(self, name)}"
                )


@dataclass(frozen=True)
class ShapeStoreSettings:
    """How much the shape store remembers and for how long."""

    window_seconds: float = 24 * 3600.0
    """Traffic older than this no longer counts towards frequencies or coverage."""
    bucket_seconds: float = 60.0
    """Counts of the last `fine_seconds` are kept per bucket of this length."""
    fine_seconds: float = 600.0
    """How long counts stay in `bucket_seconds` buckets before they are folded into
    `coarse_bucket_seconds` ones."""
    coarse_bucket_seconds: float = 3600.0
    """Older counts are kept per bucket of this length (a multiple of `bucket_seconds`,
    aligned to the epoch), so the window's far edge moves a coarse bucket at a time."""
    limits: ShapeLimits = field(default_factory=ShapeLimits)
    """Refuse hostile shapes."""
    max_shape_sets_per_signature: int = 4096
    """Distinct shape sets kept per (model, signature) in the window; new ones beyond are
    refused, so a client cycling through sizes cannot grow the database without bound."""
    max_samples_per_model: int = 200
    """Sampled requests kept per model; the oldest are evicted first."""
    max_sample_bytes_per_model: int = 64 << 20
    """Total bytes of sampled requests kept per model; the oldest are evicted first."""

    @property
    def buckets_per_coarse_bucket(self) -> int:
        """How many `bucket_seconds` buckets one coarse bucket holds."""
        return round(self.coarse_bucket_seconds / self.bucket_seconds)

    @property
    def max_rows_per_shape_set(self) -> int:
        """The most rows one shape set of one signature can have in the store: the fine
        buckets of the last `fine_seconds` plus the current one, and the coarse buckets
        that start within the window plus the current one."""
        fine = math.ceil(self.fine_seconds / self.bucket_seconds) + 1
        coarse = math.ceil(self.window_seconds / self.coarse_bucket_seconds) + 1
        return fine + coarse

    @property
    def max_rows_per_signature(self) -> int:
        """The bound on one (model, signature)'s count rows, by design: at most
        `max_shape_sets_per_signature` shape sets, each with at most
        `max_rows_per_shape_set` rows: 4096 x 36 = 147,456 with the defaults, about 27 MB
        on disk at about 185 bytes a row (measured with one 4-d input per shape set; a
        row per shape set per minute for a day would be 1.1 GB)."""
        return self.max_shape_sets_per_signature * self.max_rows_per_shape_set

    def __post_init__(self) -> None:
        for name in ("bucket_seconds", "coarse_bucket_seconds"):
            if getattr(self, name) <= 0:
                raise ShapeStoreSettingsError(
                    f"ShapeStoreSettings.{name} must be positive, got {getattr(self, name)}"
                )
        ratio = self.coarse_bucket_seconds / self.bucket_seconds
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
            raise ShapeStoreSettingsError(
                "ShapeStoreSettings.coarse_bucket_seconds must be a whole multiple of "
                f"bucket_seconds ({self.bucket_seconds}), got {self.coarse_bucket_seconds}"
            )
        if self.fine_seconds < 0:
            raise ShapeStoreSettingsError(
                f"ShapeStoreSettings.fine_seconds must not be negative, got {self.fine_seconds}"
            )
        if self.window_seconds < self.coarse_bucket_seconds:
            raise ShapeStoreSettingsError(
                "ShapeStoreSettings.window_seconds must be at least coarse_bucket_seconds "
                f"({self.coarse_bucket_seconds}), got {self.window_seconds}"
            )
        for name in (
            "max_shape_sets_per_signature",
            "max_samples_per_model",
            "max_sample_bytes_per_model",
        ):
            if getattr(self, name) < 0:
                raise ShapeStoreSettingsError(
                    f"ShapeStoreSettings.{name} must not be negative, got {getattr(self, name)}"
                )
