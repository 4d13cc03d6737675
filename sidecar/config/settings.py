"""The sidecar's settings as typed, immutable dataclasses.

They are built and validated once by :func:`sidecar.config.load_settings`; code
that receives them trusts them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from converter import BACKENDS, TrtPrecisionMode
from sidecar.config import defaults, values
from sidecar.config.job import JobSettings
from sidecar.config.schema import Conflict, FieldOrigin, check_conflicts, section, setting
from sidecar.config.sections import (
    AdminSection,
    FleetSection,
    MetricsSection,
    PathsSection,
    RetrySection,
    TapSection,
    WatchSection,
)
from sidecar.config.shape_store import ShapeStoreSettings

PRECISIONS: Final = tuple(TrtPrecisionMode.supported_precision_modes())
"""Accepted values of ``ModelPolicy.precision``: the converter's."""

ACCURACY_CHECKS: Final = ("auto", "top1", "scaled_error")
"""Accepted values of ``ModelPolicy.accuracy``."""


@dataclass(frozen=True)
class ModelPolicy:
    """How the sidecar converts, builds and keeps the versions of one model.

    Each field is declared once (:func:`~sidecar.config.schema.setting`): the config
    file's ``[policy]`` keys, the environment, the admin API's overrides and their wire
    mapping are read from these declarations.
    """

    backend: str = setting(defaults.DEFAULT_BACKEND, values.choice_parser(BACKENDS, upper=False))
    """Engine compiler: "auto" (TF-TRT where TF has it, else XLA), "xla" or "tensorrt"."""

    precision: str = setting(defaults.DEFAULT_PRECISION,
                             values.choice_parser(PRECISIONS, upper=True))
    """The lowest precision the model may compute in, as TF-TRT's ``precision_mode``:
    "FP32" float32 only; "FP16" or "BF16" a 16-bit float (bfloat16 on a CPU with native
    bf16) or float32; "INT8" int8 (calibrated on recorded requests), a 16-bit float or
    float32. Of those allowed, the fastest measured that passes the accuracy check is
    published. FP32 by default: changing a model's results is its owner's choice."""

    accuracy: str = setting(defaults.DEFAULT_ACCURACY,
                            values.choice_parser(ACCURACY_CHECKS, upper=False))
    """How a converted version's outputs are checked against the original's: "auto"
    (top-1 agreement for outputs that are class probabilities, i.e. float [batch,
    classes >= 2] whose rows are >= 0 and sum to 1; scaled error for every other output),
    "top1" (top-1 agreement for every float [batch, classes >= 2] output, logits too;
    scaled error for the others) or "scaled_error" (scaled error for every output)."""

    min_top1_agreement: float = setting(defaults.DEFAULT_MIN_TOP1_AGREEMENT,
                                        values.parse_share)
    """Smallest share of rows whose top-1 class must match the original's, in each output
    the top-1 check applies to."""

    max_scaled_error: float | None = setting(None, values.optional_tolerance_parser())
    """Largest scaled error (``max|converted - original| / (1 + max|original|)``) an output
    checked by scaled error may have; None (unset): the tolerance of the precision the
    version computes in (``converter.TOLERANCE``: FP32 1e-4, FP16/BF16 2e-2, INT8 5e-2)."""

    # TF Serving replays at most 1000 warmup records, one per prebuilt shape.
    max_engines: int = setting(defaults.DEFAULT_MAX_ENGINES,
                               values.positive_int_parser(at_most=1000))
    """Most prebuilt input shapes per segment (TF-TRT's ``maximum_cached_engines``)."""

    minimum_segment_size: int = setting(defaults.DEFAULT_MINIMUM_SEGMENT_SIZE,
                                        values.positive_int_parser(at_most=100_000))
    """Segments with fewer ops stay native (TF-TRT's ``minimum_segment_size``)."""

    build_at_runtime: bool = setting(defaults.DEFAULT_BUILD_AT_RUNTIME, values.parse_bool)
    """Whether serving may compile new shapes; off keeps compilation out of serving."""

    keep_versions: int = setting(defaults.DEFAULT_KEEP_VERSIONS,
                                 values.positive_int_parser(at_most=1000))
    """How many newest published versions stay in the serving base (the original served
    first of the newest incoming version, once its converted form took over, is kept
    beside them as its rollback target without counting)."""

    serve_original_first: bool = setting(defaults.DEFAULT_SERVE_ORIGINAL_FIRST,
                                         values.parse_bool)
    """Publish a landed version's original at once (served within seconds, warmed up for
    the recorded shapes) and its converted form, once converted, built and verified, as
    the next served number (``sidecar.tfserving.numbering``); off: the version is served
    only once converted, as its first served number."""

    default_batch_sizes: tuple[int, ...] = setting(defaults.DEFAULT_BATCH_SIZES,
                                                   values.batch_sizes_parser(at_most=1 << 20))
    """Batch sizes to build engines for when no request shapes are known yet."""

    rebuild_below_coverage: float = setting(defaults.DEFAULT_REBUILD_BELOW_COVERAGE,
                                            values.parse_share)
    """Rebuild for the current top shapes when the served version was built for less than
    this share of recent traffic (0 turns coverage-triggered rebuilds off)."""

    rebuild_after_seconds: float = setting(defaults.DEFAULT_REBUILD_AFTER_SECONDS,
                                           values.seconds_parser(allow_zero=True))
    """How long coverage must stay below ``rebuild_below_coverage`` before a rebuild."""

    rebuild_min_requests: int = setting(defaults.DEFAULT_REBUILD_MIN_REQUESTS,
                                        values.positive_int_parser(at_most=1 << 40))
    """Fewer requests than this in the shape store's window are not judged."""

    def check(self, origin: FieldOrigin) -> None:
        """Raise ConfigError for fields that do not go together: the one check of a whole
        policy, for the config file and the admin API's overrides alike.

        ``origin(field)`` says under which name and where a field was given, or None when
        it was not; the error names the first given field of the conflict.
        """
        check_conflicts(self, origin, "the configured policy")

    def conflicts(self) -> Iterator[Conflict]:
        """(fields involved, problem, fix) per conflict."""
        if len(self.default_batch_sizes) > self.max_engines:
            yield (
                ("default_batch_sizes", "max_engines"),
                f"does not fit: {len(self.default_batch_sizes)} default batch sizes need "
                f"{len(self.default_batch_sizes)} engines per segment, but max_engines = "
                f"{self.max_engines}",
                "list at most max_engines default batch sizes, or raise max_engines",
            )


@dataclass(frozen=True)
class Settings:
    """Everything the sidecar needs to run, validated: a section per concern, and the
    policies models are converted with.

    Each field of a section is declared once (:func:`~sidecar.config.schema.setting`)
    with its parser and flag; code reads ``settings.<section>.<field>``, the config file
    takes it in its section's table (``[fleet] lease_seconds = 30``) or flat under its
    flat name (``lease_seconds = 30``), the environment as ``TFTRT_SIDECAR_<FLAT NAME>``,
    ``tftrt-sidecar run`` by its flag. The flat name is the section's prefix and the
    field's name: no prefix for ``paths``, ``watch``, ``tap`` and ``fleet``, whose fields
    kept the names they had before the sections (``incoming_base``, ``tap_listen``,
    ``lease_seconds``); ``<section>_`` for the others (``admin_listen``, ``retry_
    backoff_seconds``, ``job_signature_key``), except ``shutdown_grace_seconds``.
    """

    paths: PathsSection = section(PathsSection, prefix="")
    """Where raw versions land, what TF Serving serves, durable state, the engine cache."""

    watch: WatchSection = section(WatchSection, prefix="")
    """When a version counts as complete and how often the incoming base is rescanned."""

    retry: RetrySection = section(RetrySection)
    """How a job that failed on a storage fault is retried."""

    tap: TapSection = section(TapSection, prefix="")
    """Envoy in front of TF Serving and the shape recorder it mirrors to."""

    admin: AdminSection = section(AdminSection)
    """The admin gRPC API."""

    metrics: MetricsSection = section(MetricsSection)
    """The Prometheus endpoint."""

    fleet: FleetSection = section(FleetSection, prefix="")
    """The fleet's shared store and this replica's part in it."""

    job: JobSettings = section(JobSettings)
    """What every job converts and how strictly it verifies the result."""

    shape_store: ShapeStoreSettings = section(ShapeStoreSettings)
    """How much recorded traffic the shape store keeps."""

    default_policy: ModelPolicy = field(default_factory=ModelPolicy)
    """Policy for every model without its own ``[models.<name>]`` section."""

    model_policies: Mapping[str, ModelPolicy] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Per-model policies (read-only), each the default policy with that model's overrides."""

    def policy_for(self, model: str) -> ModelPolicy:
        """The policy that applies to ``model``."""
        return self.model_policies.get(model, self.default_policy)
