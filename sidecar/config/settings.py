"""The sidecar's settings as typed, immutable dataclasses.

They are built and validated once by :func:`sidecar.config.load_settings`; code
that receives them trusts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

from converter import BACKENDS, TrtPrecisionMode
from sidecar.base.errors import ConfigError
from sidecar.config import defaults, values
from sidecar.config.address import Address
from sidecar.config.schema import setting

PRECISIONS: Final = tuple(TrtPrecisionMode.supported_precision_modes())
"""Accepted values of ``ModelPolicy.precision``: the converter's."""

ACCURACY_CHECKS: Final = ("auto", "top1", "scaled_error")
"""Accepted values of ``ModelPolicy.accuracy``."""

_DEFAULTS: Final = "sidecar.config.defaults"
"""Where a default address comes from, as an error would name it (a typo there)."""

FieldOrigin = Callable[[str], "tuple[str, str, object] | None"]
"""``origin(field) -> (name it was given under, where, the value as given)``, or None when
the field was not given there."""


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
        for fields, problem, fix in self._conflicts():
            given = [found for found in map(origin, fields) if found is not None]
            field, source, value = (given[0] if given else
                                    (fields[0], "the configured policy", getattr(self, fields[0])))
            raise ConfigError(field=field, value=value, source=source, problem=problem, fix=fix)

    def _conflicts(self) -> Iterator[tuple[tuple[str, ...], str, str]]:
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
    """Everything the sidecar needs to run, validated.

    Each scalar field is declared once (:func:`~sidecar.config.schema.setting`) with its
    parser and flag: the config file's keys, ``TFTRT_SIDECAR_<FIELD>`` and the flags of
    ``tftrt-sidecar run`` are read from these declarations.
    """

    incoming_base: Path = setting(
        defaults.DEFAULT_INCOMING_BASE, values.parse_path, "--incoming", "DIR",
        "where raw versions land as <model>/<version>/ (default {default})")
    """Where raw SavedModel versions land, as ``<model>/<version>/`` (absolute)."""

    serving_base: Path = setting(
        defaults.DEFAULT_SERVING_BASE, values.parse_path, "--serving", "DIR",
        "TF Serving's model base paths (default {default})")
    """TF Serving's model base paths, as ``<model>/<version>/`` (absolute)."""

    state_dir: Path = setting(
        defaults.DEFAULT_STATE_DIR, values.parse_path, "--state", "DIR",
        "job journal and shape store (default {default})")
    """Durable state: job journal and shape store (absolute)."""

    engine_cache_dir: Path = setting(
        defaults.DEFAULT_ENGINE_CACHE_DIR, values.parse_path, "--engine-cache", "DIR",
        "compiled engine cache (default {default})")
    """Compiled engines, namespaced by TF version and device model (absolute)."""

    model_config_file: Path = setting(
        defaults.DEFAULT_MODEL_CONFIG_FILE, values.parse_path, "--model-config-file", "FILE",
        "TF Serving's --model_config_file, kept by the sidecar (default {default})")
    """TF Serving's ``--model_config_file``, rewritten atomically by the sidecar (absolute)."""

    settle_seconds: float = setting(
        defaults.DEFAULT_SETTLE_SECONDS, values.seconds_parser(allow_zero=True),
        "--settle-seconds", "SECONDS",
        "seconds a version's files must stay unchanged (default {default})")
    """Seconds a version's files must stay unchanged before it counts as complete."""

    marker_file: str | None = setting(
        defaults.DEFAULT_MARKER_FILE, values.parse_marker_file, "--marker-file", "NAME",
        "file name that marks a version complete (replaces settling)")
    """File name that marks a version complete; when set, it replaces settling."""

    rescan_interval_seconds: float = setting(
        defaults.DEFAULT_RESCAN_INTERVAL_SECONDS, values.seconds_parser(allow_zero=False),
        "--rescan-interval-seconds", "SECONDS", "seconds between rescans (default {default})")
    """Seconds between rescans of the incoming base."""

    once: bool = setting(False, values.parse_bool, "--once", None,
                         "exit when nothing is left to do")
    """Exit when nothing is left to do instead of watching forever."""

    retry_backoff_seconds: float = setting(
        defaults.DEFAULT_RETRY_BACKOFF_SECONDS, values.seconds_parser(allow_zero=False),
        "--retry-backoff-seconds", "SECONDS",
        "wait before retrying a job that failed on a storage fault, doubling per attempt "
        "(default {default})")
    """Seconds before a job that failed on a storage fault is retried (doubling per attempt)."""

    retry_backoff_max_seconds: float = setting(
        defaults.DEFAULT_RETRY_BACKOFF_MAX_SECONDS, values.seconds_parser(allow_zero=False),
        "--retry-backoff-max-seconds", "SECONDS",
        "longest wait between such retries (default {default})")
    """The longest wait between two retries of such a job."""

    tap_listen: Address | None = setting(
        None, values.parse_optional_address, "--tap-listen", "HOST:PORT",
        f"Envoy takes clients' calls here and records a sample of their shapes (the pod "
        f"uses {defaults.DEFAULT_TAP_LISTEN}); off by default")
    """Where clients call: Envoy listens here, forwards to TF Serving and mirrors a sample
    to the shape recorder; None: no tap. The pod uses ``defaults.DEFAULT_TAP_LISTEN``."""

    upstream: Address | None = setting(
        values.parse_address(defaults.DEFAULT_UPSTREAM, "upstream", _DEFAULTS),
        values.parse_optional_address, "--upstream", "HOST:PORT",
        "TF Serving's gRPC address Envoy forwards to (default {default})")
    """TF Serving's gRPC address, where Envoy forwards the calls clients may make."""

    rest_listen: Address | None = setting(
        None, values.parse_optional_address, "--rest-listen", "HOST:PORT",
        "Envoy takes clients' REST calls here too (the pod uses 0.0.0.0:8501); off by default")
    """Where clients call TF Serving's REST API through Envoy (recorded like gRPC); None:
    REST is not proxied. The pod uses ``0.0.0.0:8501``."""

    rest_upstream: Address = setting(
        values.parse_address(defaults.DEFAULT_REST_UPSTREAM, "rest_upstream", _DEFAULTS),
        values.parse_address, "--rest-upstream", "HOST:PORT",
        "TF Serving's REST address (default {default})")
    """TF Serving's REST address, where Envoy forwards REST calls."""

    rest_recorder_listen: Address = setting(
        values.parse_address(defaults.DEFAULT_REST_RECORDER_LISTEN, "rest_recorder_listen",
                             _DEFAULTS),
        values.parse_address, "--rest-recorder-listen", "HOST:PORT",
        "the REST side of the shape recorder (default {default})")
    """Where the shape recorder takes the REST calls Envoy mirrors (keep it on loopback)."""

    recorder_listen: Address = setting(
        values.parse_address(defaults.DEFAULT_RECORDER_LISTEN, "recorder_listen", _DEFAULTS),
        values.parse_address, "--recorder-listen", "HOST:PORT",
        "the shape recorder Envoy mirrors to (default {default})")
    """Where the shape recorder takes the calls Envoy mirrors (keep it on loopback)."""

    envoy_admin_listen: Address = setting(
        values.parse_address(defaults.DEFAULT_ENVOY_ADMIN_LISTEN, "envoy_admin_listen",
                             _DEFAULTS),
        values.parse_address, "--envoy-admin-listen", "HOST:PORT",
        "Envoy's admin API, loopback only (default {default})")
    """Envoy's admin API; must be a loopback address."""

    proxy_stats_listen: Address | None = setting(
        None, values.parse_optional_address, "--proxy-stats-listen", "HOST:PORT",
        "serve Envoy's Prometheus stats here (the pod uses 0.0.0.0:9103); off by default")
    """Where Prometheus scrapes Envoy's own stats (only ``/stats/prometheus``); None: not
    exposed. The pod uses ``0.0.0.0:9103``."""

    mirror_fraction: float = setting(
        defaults.DEFAULT_MIRROR_FRACTION, values.parse_share, "--mirror-fraction", "SHARE",
        "largest share of inference calls recorded, 0 to 1 (default {default})")
    """The largest share of inference calls Envoy mirrors to the recorder (0 to 1, steps of
    0.01); the share in force is lower when traffic exceeds ``mirror_budget_per_second``."""

    mirror_budget_bytes_per_second: float = setting(
        defaults.DEFAULT_MIRROR_BUDGET_BYTES_PER_SECOND, values.rate_parser(),
        "--mirror-budget-bytes-per-second", "BYTES",
        "recorded request bytes per second above which the share is lowered; 0: never "
        "(default {default})")
    """Mirrored request bytes per second the recorder is kept to (large requests cost the
    recorder more to parse); 0 leaves the share to ``mirror_budget_per_second``."""

    mirror_budget_per_second: float = setting(
        defaults.DEFAULT_MIRROR_BUDGET_PER_SECOND, values.rate_parser(),
        "--mirror-budget-per-second", "CALLS",
        "recorded calls per second above which the share is lowered; 0: never "
        "(default {default})")
    """Mirrored calls per second the recorder is kept to; 0 keeps the share at
    ``mirror_fraction`` whatever the traffic."""

    run_envoy: bool = setting(
        True, values.parse_bool, "--run-envoy", "BOOL",
        "start Envoy here (default true; false where it runs in its own container)")
    """Start and supervise Envoy here; False where Envoy runs in a container of its own
    (the pod), with the bootstrap ``tftrt-sidecar envoy-bootstrap`` wrote."""

    admin_listen: Address | None = setting(
        None, values.parse_optional_address, "--admin-listen", "HOST:PORT",
        f"serve the admin API here (the pod uses {defaults.DEFAULT_ADMIN_LISTEN})")
    """Where the admin gRPC API listens; None: no admin API. The pod uses
    ``defaults.DEFAULT_ADMIN_LISTEN`` (localhost) or the pod IP for kubelet probes."""

    admin_token_file: Path | None = setting(
        None, values.parse_optional_path, "--admin-token-file", "FILE",
        "file with the bearer token admin calls must carry")
    """A file holding the bearer token admin calls must carry (e.g. a mounted Secret);
    None: no token (the API is then protected only by where it listens)."""

    admin_tls_cert_file: Path | None = setting(
        None, values.parse_optional_path, "--admin-tls-cert", "FILE",
        "PEM certificate: the admin API serves TLS")
    """PEM certificate of the admin API; with ``admin_tls_key_file`` it serves TLS."""

    admin_tls_key_file: Path | None = setting(
        None, values.parse_optional_path, "--admin-tls-key", "FILE",
        "PEM private key of --admin-tls-cert")
    """PEM private key of the admin API's certificate."""

    admin_tls_client_ca_file: Path | None = setting(
        None, values.parse_optional_path, "--admin-tls-client-ca", "FILE",
        "PEM CA for client certificates (mutual TLS)")
    """PEM CA that client certificates must chain to (mutual TLS); needs the two above."""

    shutdown_grace_seconds: float = setting(
        10.0, values.seconds_parser(allow_zero=True), "--shutdown-grace-seconds", "SECONDS",
        "on SIGTERM, time for admin calls to end")
    """On SIGTERM: how long running admin calls may take to finish (the running job
    finishes first; unfinished work resumes on the next start)."""

    metrics_listen: Address | None = setting(
        None, values.parse_optional_address, "--metrics-listen", "HOST:PORT",
        f"serve /metrics here (the pod uses {defaults.DEFAULT_METRICS_LISTEN})")
    """Where Prometheus ``/metrics`` is served; None: not served. The pod uses
    ``defaults.DEFAULT_METRICS_LISTEN``."""

    store: Path | None = setting(
        None, values.parse_optional_path, "--store", "DIR",
        "the fleet's shared store (a ReadWriteMany volume); unset: this pod works alone")
    """The fleet's shared store (absolute): one conversion per model version and device
    model across every replica pointed at it. None: single-pod mode."""

    replica_id: str = setting(
        defaults.default_replica_id(), values.parse_name, "--replica-id", "ID",
        "this replica's name in the fleet store (default: the host name, {default})")
    """This replica's identity in the fleet store (the pod name, i.e. the host name)."""

    lease_seconds: float = setting(
        defaults.DEFAULT_LEASE_SECONDS, values.seconds_parser(allow_zero=False),
        "--lease-seconds", "SECONDS",
        "how long a fleet claim lasts unrenewed before another replica takes over "
        "(default {default})")
    """How long a claim on a key lasts without renewal before another replica takes it."""

    shape_share_seconds: float = setting(
        defaults.DEFAULT_SHAPE_SHARE_SECONDS, values.seconds_parser(allow_zero=False),
        "--shape-share-seconds", "SECONDS",
        "how often this replica writes its shape counts into the fleet store "
        "(default {default})")
    """How often this replica's recorded shape counts are written into the store; counts
    older than four of these are ignored (their replica went away)."""

    default_policy: ModelPolicy = field(default_factory=ModelPolicy)
    """Policy for every model without its own ``[models.<name>]`` section."""

    model_policies: Mapping[str, ModelPolicy] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Per-model policies (read-only), each the default policy with that model's overrides."""

    def policy_for(self, model: str) -> ModelPolicy:
        """The policy that applies to ``model``."""
        return self.model_policies.get(model, self.default_policy)
