"""Settings of the shape store: the window, hostile-shape limits and sample budgets."""

from __future__ import annotations

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
    """Counts are kept per bucket of this length; the window slides a bucket at a time."""
    limits: ShapeLimits = field(default_factory=ShapeLimits)
    """Refuse hostile shapes."""
    max_shape_sets_per_signature: int = 4096
    """Distinct shape sets kept per (model, signature) in the window; new ones beyond are
    refused, so a client cycling through sizes cannot grow the database without bound."""
    max_samples_per_model: int = 200
    """Sampled requests kept per model; the oldest are evicted first."""
    max_sample_bytes_per_model: int = 64 << 20
    """Total bytes of sampled requests kept per model; the oldest are evicted first."""

    def __post_init__(self) -> None:
        if self.bucket_seconds <= 0:
            raise ShapeStoreSettingsError(
                f"ShapeStoreSettings.bucket_seconds must be positive, got {self.bucket_seconds}"
            )
        if self.window_seconds < self.bucket_seconds:
            raise ShapeStoreSettingsError(
                "ShapeStoreSettings.window_seconds must be at least bucket_seconds "
                f"({self.bucket_seconds}), got {self.window_seconds}"
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
