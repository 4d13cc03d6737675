"""The sections of the sidecar's settings: where files live, how versions are watched and
retried, the tap, the admin API, the metrics endpoint and the fleet.

Each field is declared once (:func:`~sidecar.config.schema.setting`); a section's fields
are checked together by its ``conflicts`` when :func:`~sidecar.config.load_settings`
builds it, file checks included, so the code that receives a section trusts it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sidecar.base.errors import ConfigError
from sidecar.config import defaults, values
from sidecar.config.address import Address
from sidecar.config.schema import Conflict, FieldOrigin, setting

_BEARER_TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 b64token

MIN_TOKEN_LENGTH: Final = 16
"""Shorter bearer tokens are refused (they can be guessed)."""


@dataclass(frozen=True)
class PathsSection:
    """Where raw versions land, what TF Serving serves, state and engine cache."""

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

    def conflicts(self) -> Iterator[Conflict]:
        """The incoming and the serving base must not overlap."""
        incoming, serving = self.incoming_base, self.serving_base
        if incoming == serving or incoming in serving.parents or serving in incoming.parents:
            yield (("serving_base", "incoming_base"),
                   f"overlaps incoming_base {str(incoming)!r}, so TF Serving would serve raw "
                   "versions",
                   "use two separate directories, e.g. /models/incoming and /models/serving")


@dataclass(frozen=True)
class WatchSection:
    """When a version counts as complete, how often the incoming base is scanned."""

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


@dataclass(frozen=True)
class RetrySection:
    """How a job that failed on a storage fault is retried."""

    backoff_seconds: float = setting(
        defaults.DEFAULT_RETRY_BACKOFF_SECONDS, values.seconds_parser(allow_zero=False),
        "--retry-backoff-seconds", "SECONDS",
        "wait before retrying a job that failed on a storage fault, doubling per attempt "
        "(default {default})")
    """Seconds before a job that failed on a storage fault is retried (doubling per attempt)."""

    backoff_max_seconds: float = setting(
        defaults.DEFAULT_RETRY_BACKOFF_MAX_SECONDS, values.seconds_parser(allow_zero=False),
        "--retry-backoff-max-seconds", "SECONDS",
        "longest wait between such retries (default {default})")
    """The longest wait between two retries of such a job."""


@dataclass(frozen=True)
class TapSection:
    """Envoy in front of TF Serving, and the shape recorder it mirrors calls to."""

    tap_listen: Address | None = setting(
        None, values.parse_optional_address, "--tap-listen", "HOST:PORT",
        f"Envoy takes clients' calls here and records a sample of their shapes (the pod "
        f"uses {defaults.DEFAULT_TAP_LISTEN}); off by default")
    """Where clients call: Envoy listens here, forwards to TF Serving and mirrors a sample
    to the shape recorder; None: no tap. The pod uses ``defaults.DEFAULT_TAP_LISTEN``."""

    upstream: Address | None = setting(
        defaults.DEFAULT_UPSTREAM, values.parse_optional_address, "--upstream", "HOST:PORT",
        "TF Serving's gRPC address Envoy forwards to (default {default})")
    """TF Serving's gRPC address, where Envoy forwards the calls clients may make; set
    whenever ``tap_listen`` is."""

    rest_listen: Address | None = setting(
        None, values.parse_optional_address, "--rest-listen", "HOST:PORT",
        "Envoy takes clients' REST calls here too (the pod uses 0.0.0.0:8501); off by default")
    """Where clients call TF Serving's REST API through Envoy (recorded like gRPC); None:
    REST is not proxied. The pod uses ``0.0.0.0:8501``."""

    rest_upstream: Address = setting(
        defaults.DEFAULT_REST_UPSTREAM, values.parse_address, "--rest-upstream", "HOST:PORT",
        "TF Serving's REST address (default {default})")
    """TF Serving's REST address, where Envoy forwards REST calls."""

    rest_recorder_listen: Address = setting(
        defaults.DEFAULT_REST_RECORDER_LISTEN, values.parse_address,
        "--rest-recorder-listen", "HOST:PORT",
        "the REST side of the shape recorder (default {default})")
    """Where the shape recorder takes the REST calls Envoy mirrors (keep it on loopback)."""

    recorder_listen: Address = setting(
        defaults.DEFAULT_RECORDER_LISTEN, values.parse_address, "--recorder-listen",
        "HOST:PORT", "the shape recorder Envoy mirrors to (default {default})")
    """Where the shape recorder takes the calls Envoy mirrors (keep it on loopback)."""

    envoy_admin_listen: Address = setting(
        defaults.DEFAULT_ENVOY_ADMIN_LISTEN, values.parse_address, "--envoy-admin-listen",
        "HOST:PORT", "Envoy's admin API, loopback only (default {default})")
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

    def conflicts(self) -> Iterator[Conflict]:
        """A tap needs TF Serving's address."""
        if self.tap_listen is not None and self.upstream is None:
            yield (("upstream", "tap_listen"), "is empty while tap_listen is set",
                   "set upstream to TF Serving's gRPC address, e.g. 127.0.0.1:8600, or "
                   "unset tap_listen")


@dataclass(frozen=True)
class AdminSection:
    """Where the admin gRPC API listens, its bearer token and TLS."""

    listen: Address | None = setting(
        None, values.parse_optional_address, "--admin-listen", "HOST:PORT",
        f"serve the admin API here (the pod uses {defaults.DEFAULT_ADMIN_LISTEN})")
    """Where the admin gRPC API listens; None: no admin API. The pod uses
    ``defaults.DEFAULT_ADMIN_LISTEN`` (localhost) or the pod IP for kubelet probes."""

    token_file: Path | None = setting(
        None, values.parse_optional_path, "--admin-token-file", "FILE",
        "file with the bearer token admin calls must carry")
    """A file holding the bearer token admin calls must carry (e.g. a mounted Secret);
    None: no token (the API is then protected only by where it listens)."""

    tls_cert_file: Path | None = setting(
        None, values.parse_optional_path, "--admin-tls-cert", "FILE",
        "PEM certificate: the admin API serves TLS")
    """PEM certificate of the admin API; with ``tls_key_file`` it serves TLS."""

    tls_key_file: Path | None = setting(
        None, values.parse_optional_path, "--admin-tls-key", "FILE",
        "PEM private key of --admin-tls-cert")
    """PEM private key of the admin API's certificate."""

    tls_client_ca_file: Path | None = setting(
        None, values.parse_optional_path, "--admin-tls-client-ca", "FILE",
        "PEM CA for client certificates (mutual TLS)")
    """PEM CA that client certificates must chain to (mutual TLS); needs the two above."""

    shutdown_grace_seconds: float = setting(
        10.0, values.seconds_parser(allow_zero=True), "--shutdown-grace-seconds", "SECONDS",
        "on SIGTERM, time for admin calls to end", flat="shutdown_grace_seconds")
    """On SIGTERM: how long running admin calls may take to finish (the running job
    finishes first; unfinished work resumes on the next start)."""

    token: str | None = field(default=None, repr=False)
    """The bearer token, as read from ``token_file`` when the settings were loaded."""

    def conflicts(self) -> Iterator[Conflict]:
        """TLS needs a certificate and its key, mutual TLS TLS; each file is a readable
        file (the token file is read by :meth:`with_token`)."""
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            yield (("tls_cert_file", "tls_key_file"), "and tls_key_file go together",
                   "set both the certificate and its key, or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            yield (("tls_client_ca_file",),
                   "needs TLS (mutual TLS is TLS with client certificates)",
                   "set tls_cert_file and tls_key_file too")
        for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                yield ((name,), "is not a readable file", "give the PEM file's path")

    def with_token(self, origin: FieldOrigin) -> AdminSection:
        """This section with the token read from ``token_file``; ConfigError naming the
        file (as ``origin`` says it was given) when it cannot be read or holds no bearer
        token."""
        if self.token_file is None:
            return self
        name, source, value = origin("token_file") or ("admin.token_file", "defaults",
                                                       self.token_file)
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(field=name, value=self.token_file, source=source,
                              problem=f"cannot be read ({error})",
                              fix="point it at a readable file holding the token") from error
        if len(token) < MIN_TOKEN_LENGTH or not _BEARER_TOKEN.fullmatch(token):
            raise ConfigError(
                field=name, value=value, source=source,
                problem=f"does not hold a bearer token of at least {MIN_TOKEN_LENGTH} "
                "characters (letters, digits and -._~+/, then any '=')",
                fix="write e.g. the output of `openssl rand -hex 32` into it")
        return dataclasses.replace(self, token=token)


@dataclass(frozen=True)
class MetricsSection:
    """Where Prometheus scrapes the sidecar's own metrics."""

    listen: Address | None = setting(
        None, values.parse_optional_address, "--metrics-listen", "HOST:PORT",
        f"serve /metrics here (the pod uses {defaults.DEFAULT_METRICS_LISTEN})")
    """Where Prometheus ``/metrics`` is served; None: not served. The pod uses
    ``defaults.DEFAULT_METRICS_LISTEN``."""


@dataclass(frozen=True)
class FleetSection:
    """The store replicas share, so each version is converted once per device."""

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
