"""The command-line flags that set the sidecar's settings (for ``tftrt-sidecar run``)."""

from __future__ import annotations

import argparse
from types import MappingProxyType
from typing import Final

from sidecar.config import defaults

FLAG_FIELDS: Final = MappingProxyType(
    {
        "incoming": ("incoming_base", "--incoming"),
        "serving": ("serving_base", "--serving"),
        "state": ("state_dir", "--state"),
        "engine_cache": ("engine_cache_dir", "--engine-cache"),
        "model_config_file": ("model_config_file", "--model-config-file"),
        "settle_seconds": ("settle_seconds", "--settle-seconds"),
        "marker_file": ("marker_file", "--marker-file"),
        "rescan_interval_seconds": ("rescan_interval_seconds", "--rescan-interval-seconds"),
        "once": ("once", "--once"),
        "retry_backoff_seconds": ("retry_backoff_seconds", "--retry-backoff-seconds"),
        "retry_backoff_max_seconds": ("retry_backoff_max_seconds",
                                      "--retry-backoff-max-seconds"),
        "tap_listen": ("tap_listen", "--tap-listen"),
        "upstream": ("upstream", "--upstream"),
        "recorder_listen": ("recorder_listen", "--recorder-listen"),
        "rest_listen": ("rest_listen", "--rest-listen"),
        "rest_upstream": ("rest_upstream", "--rest-upstream"),
        "rest_recorder_listen": ("rest_recorder_listen", "--rest-recorder-listen"),
        "envoy_admin_listen": ("envoy_admin_listen", "--envoy-admin-listen"),
        "proxy_stats_listen": ("proxy_stats_listen", "--proxy-stats-listen"),
        "mirror_fraction": ("mirror_fraction", "--mirror-fraction"),
        "mirror_budget_per_second": ("mirror_budget_per_second", "--mirror-budget-per-second"),
        "run_envoy": ("run_envoy", "--run-envoy"),
        "admin_listen": ("admin_listen", "--admin-listen"),
        "metrics_listen": ("metrics_listen", "--metrics-listen"),
        "admin_token_file": ("admin_token_file", "--admin-token-file"),
        "admin_tls_cert_file": ("admin_tls_cert_file", "--admin-tls-cert"),
        "admin_tls_key_file": ("admin_tls_key_file", "--admin-tls-key"),
        "admin_tls_client_ca_file": ("admin_tls_client_ca_file", "--admin-tls-client-ca"),
        "shutdown_grace_seconds": ("shutdown_grace_seconds", "--shutdown-grace-seconds"),
    }
)
"""argparse destination -> (settings field, flag as typed)."""


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config``, the directory flags and ``--once`` to ``parser``.

    Every flag defaults to None (not given) so that the config file and the
    environment apply unless a flag overrides them.
    """
    parser.add_argument(
        "--config", default=None, metavar="FILE",
        help=f"TOML config file (else ${defaults.ENV_CONFIG_FILE}, else built-in defaults)",
    )
    parser.add_argument(
        "--incoming", default=None, metavar="DIR",
        help=f"where raw versions land as <model>/<version>/ "
        f"(default {defaults.DEFAULT_INCOMING_BASE})",
    )
    parser.add_argument(
        "--serving", default=None, metavar="DIR",
        help=f"TF Serving's model base paths (default {defaults.DEFAULT_SERVING_BASE})",
    )
    parser.add_argument(
        "--state", default=None, metavar="DIR",
        help=f"job journal and shape store (default {defaults.DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--engine-cache", default=None, metavar="DIR",
        help=f"compiled engine cache (default {defaults.DEFAULT_ENGINE_CACHE_DIR})",
    )
    parser.add_argument(
        "--model-config-file", default=None, metavar="FILE",
        help=f"TF Serving's --model_config_file, kept by the sidecar "
        f"(default {defaults.DEFAULT_MODEL_CONFIG_FILE})",
    )
    parser.add_argument(
        "--settle-seconds", default=None, metavar="SECONDS",
        help=f"seconds a version's files must stay unchanged "
        f"(default {defaults.DEFAULT_SETTLE_SECONDS:g})",
    )
    parser.add_argument(
        "--marker-file", default=None, metavar="NAME",
        help="file name that marks a version complete (replaces settling)",
    )
    parser.add_argument(
        "--rescan-interval-seconds", default=None, metavar="SECONDS",
        help=f"seconds between rescans (default {defaults.DEFAULT_RESCAN_INTERVAL_SECONDS:g})",
    )
    parser.add_argument(
        "--once", action="store_const", const=True, default=None,
        help="exit when nothing is left to do",
    )
    parser.add_argument(
        "--retry-backoff-seconds", default=None, metavar="SECONDS",
        help=f"wait before retrying a job that failed on a storage fault, doubling per "
        f"attempt (default {defaults.DEFAULT_RETRY_BACKOFF_SECONDS:g})",
    )
    parser.add_argument(
        "--retry-backoff-max-seconds", default=None, metavar="SECONDS",
        help=f"longest wait between such retries "
        f"(default {defaults.DEFAULT_RETRY_BACKOFF_MAX_SECONDS:g})",
    )
    parser.add_argument(
        "--tap-listen", default=None, metavar="HOST:PORT",
        help=f"Envoy takes clients' calls here and records a sample of their shapes (the pod "
        f"uses {defaults.DEFAULT_TAP_LISTEN}); off by default",
    )
    parser.add_argument(
        "--upstream", default=None, metavar="HOST:PORT",
        help=f"TF Serving's gRPC address Envoy forwards to (default {defaults.DEFAULT_UPSTREAM})",
    )
    parser.add_argument(
        "--recorder-listen", default=None, metavar="HOST:PORT",
        help=f"the shape recorder Envoy mirrors to (default {defaults.DEFAULT_RECORDER_LISTEN})",
    )
    parser.add_argument(
        "--rest-listen", default=None, metavar="HOST:PORT",
        help="Envoy takes clients' REST calls here too (the pod uses 0.0.0.0:8501); off by "
        "default",
    )
    parser.add_argument(
        "--rest-upstream", default=None, metavar="HOST:PORT",
        help=f"TF Serving's REST address (default {defaults.DEFAULT_REST_UPSTREAM})",
    )
    parser.add_argument(
        "--rest-recorder-listen", default=None, metavar="HOST:PORT",
        help=f"the REST side of the shape recorder "
        f"(default {defaults.DEFAULT_REST_RECORDER_LISTEN})",
    )
    parser.add_argument(
        "--envoy-admin-listen", default=None, metavar="HOST:PORT",
        help=f"Envoy's admin API, loopback only (default {defaults.DEFAULT_ENVOY_ADMIN_LISTEN})",
    )
    parser.add_argument(
        "--proxy-stats-listen", default=None, metavar="HOST:PORT",
        help="serve Envoy's Prometheus stats here (the pod uses 0.0.0.0:9103); off by default",
    )
    parser.add_argument(
        "--mirror-fraction", default=None, metavar="SHARE",
        help=f"largest share of inference calls recorded, 0 to 1 "
        f"(default {defaults.DEFAULT_MIRROR_FRACTION:g})",
    )
    parser.add_argument(
        "--mirror-budget-per-second", default=None, metavar="CALLS",
        help=f"recorded calls per second above which the share is lowered; 0: never "
        f"(default {defaults.DEFAULT_MIRROR_BUDGET_PER_SECOND:g})",
    )
    parser.add_argument(
        "--run-envoy", default=None, metavar="BOOL",
        help="start Envoy here (default true; false where it runs in its own container)",
    )
    parser.add_argument(
        "--admin-listen", default=None, metavar="HOST:PORT",
        help=f"serve the admin API here (the pod uses {defaults.DEFAULT_ADMIN_LISTEN})",
    )
    for flag, metavar, text in (
        ("--admin-token-file", "FILE", "file with the bearer token admin calls must carry"),
        ("--admin-tls-cert", "FILE", "PEM certificate: the admin API serves TLS"),
        ("--admin-tls-key", "FILE", "PEM private key of --admin-tls-cert"),
        ("--admin-tls-client-ca", "FILE", "PEM CA for client certificates (mutual TLS)"),
        ("--shutdown-grace-seconds", "SECONDS", "on SIGTERM, time for admin calls to end"),
    ):
        parser.add_argument(flag, default=None, metavar=metavar, help=text)
    parser.add_argument(
        "--metrics-listen", default=None, metavar="HOST:PORT",
        help=f"serve /metrics here (the pod uses {defaults.DEFAULT_METRICS_LISTEN})",
    )


def build_argument_parser(prog: str = "tftrt-sidecar run") -> argparse.ArgumentParser:
    """A parser with only the settings flags, for ``run`` and for tests."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Convert, warm up and publish model versions for TF Serving."
    )
    add_settings_arguments(parser)
    return parser
