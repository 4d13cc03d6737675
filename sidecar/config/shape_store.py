"""Settings of the shape store: the window, hostile-shape limits and sample budgets; the
``shape_store`` section of the settings (``[shape_store]``,
``TFTRT_SIDECAR_SHAPE_STORE_<FIELD>``, ``--shape-store-<field>``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from sidecar.config import values
from sidecar.config.schema import Conflict, setting

_DAY = 24 * 3600.0


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
        # Built by code only (not a setting): a bad limit is a bug, checked where it is made.
        for name in ("max_elements", "max_dimension", "max_rank", "max_inputs"):
            if getattr(self, name) < 1:
                raise ValueError(f"ShapeLimits.{name} must be at least 1, "
                                 f"got {getattr(self, name)}")


@dataclass(frozen=True)
class ShapeStoreSettings:
    """How much traffic the shape store remembers, for how long, and how many
    sampled requests it keeps."""

    window_seconds: float = setting(
        _DAY, values.seconds_parser(allow_zero=False), "--shape-store-window-seconds",
        "SECONDS", "traffic older than this no longer counts (default {default})")
    """Traffic older than this no longer counts towards frequencies or coverage."""
    bucket_seconds: float = setting(
        60.0, values.seconds_parser(allow_zero=False), "--shape-store-bucket-seconds",
        "SECONDS", "length of the fine count buckets (default {default})")
    """Counts of the last `fine_seconds` are kept per bucket of this length."""
    fine_seconds: float = setting(
        600.0, values.seconds_parser(allow_zero=True), "--shape-store-fine-seconds",
        "SECONDS", "how long counts stay in fine buckets (default {default})")
    """How long counts stay in `bucket_seconds` buckets before they are folded into
    `coarse_bucket_seconds` ones."""
    coarse_bucket_seconds: float = setting(
        3600.0, values.seconds_parser(allow_zero=False), "--shape-store-coarse-bucket-seconds",
        "SECONDS", "length of the older, coarse count buckets, a multiple of the fine ones "
        "(default {default})")
    """Older counts are kept per bucket of this length (a multiple of `bucket_seconds`,
    aligned to the epoch), so the window's far edge moves a coarse bucket at a time."""
    limits: ShapeLimits = field(default_factory=ShapeLimits)
    """Refuse hostile shapes (not a setting: the limits are the store's safety, not a knob)."""
    max_shape_sets_per_signature: int = setting(
        4096, values.whole_number_parser(at_least=0, at_most=1 << 20),
        "--shape-store-max-shape-sets-per-signature", "COUNT",
        "distinct shape sets kept per model signature (default {default})")
    """Distinct shape sets kept per (model, signature) in the window; new ones beyond are
    refused, so a client cycling through sizes cannot grow the database without bound."""
    max_samples_per_model: int = setting(
        200, values.whole_number_parser(at_least=0, at_most=1 << 20),
        "--shape-store-max-samples-per-model", "COUNT",
        "sampled requests kept per model (default {default})")
    """Sampled requests kept per model; the oldest are evicted first."""
    max_sample_bytes_per_model: int = setting(
        64 << 20, values.whole_number_parser(at_least=0, at_most=1 << 40),
        "--shape-store-max-sample-bytes-per-model", "BYTES",
        "total bytes of sampled requests kept per model (default {default})")
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

    def conflicts(self) -> Iterator[Conflict]:
        """Coarse buckets are whole multiples of fine ones, and the window holds one."""
        ratio = self.coarse_bucket_seconds / self.bucket_seconds
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
            yield (("coarse_bucket_seconds", "bucket_seconds"),
                   f"is not a whole multiple of bucket_seconds ({self.bucket_seconds:g})",
                   "set coarse_bucket_seconds to a multiple of bucket_seconds, e.g. 3600 "
                   "for buckets of 60")
        if self.window_seconds < self.coarse_bucket_seconds:
            yield (("window_seconds", "coarse_bucket_seconds"),
                   f"is shorter than coarse_bucket_seconds ({self.coarse_bucket_seconds:g})",
                   "set window_seconds to at least one coarse bucket, e.g. 86400")
