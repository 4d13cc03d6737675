"""Envoy's bootstrap, generated from :class:`EnvoySettings`: the one source of its config.

- One listener for clients (gRPC over HTTP/2). Its routes are the tap's allow-list
  (:data:`sidecar.tfserving.methods.FORWARDED_METHODS`), each forwarded to TF Serving with no
  route timeout of its own, so the client's ``grpc-timeout`` is the only deadline. The
  recorded methods also mirror a runtime-controlled share of calls to the recorder, fire
  and forget. Any other path is answered by Envoy itself with PERMISSION_DENIED, so no
  client can reconfigure TF Serving through it.
- Envoy adds nothing clients or TF Serving would see: no ``x-envoy-*`` headers, no
  request id, the ``server`` header passed through.
- With ``rest_listen`` set, a second listener for TF Serving's REST API (HTTP/1.1 and
  HTTP/2): its inference POSTs (:data:`sidecar.tfserving.rest_api.PREDICTION_PATH`) go to TF
  Serving's REST port and mirror a share of their own (:data:`REST_MIRROR_RUNTIME_KEY`) to
  the REST recorder; status and metadata GETs (and CORS preflights of either) go there
  unmirrored; anything else is answered by Envoy with 403 and TF Serving's JSON error body.
  Envoy's own REST errors (TF Serving unreachable, a body over the limit) are JSON too.
- The admin API listens on loopback only; an optional stats listener exposes just
  ``/stats/prometheus`` from it, for Prometheus.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Final

from sidecar.config.address import Address
from sidecar.envoy.binary import EnvoyBinary
from sidecar.envoy.errors import EnvoyConfigError
from sidecar.envoy.settings import EnvoySettings
from sidecar.tfserving.methods import FORWARDED_METHODS
from sidecar.tfserving.rest_api import PREDICTION_PATH, STATUS_PATH

MIRROR_RUNTIME_KEY: Final = "tftrt.mirror_percent.grpc"
"""Runtime key of the mirrored share, changed live through the admin API's
``/runtime_modify``. Envoy reads an integer runtime value of a fractional percent as whole
percent (measured: ``10`` mirrors 10%, ``0.5`` and ``500000`` do not mean half), so the
share moves in steps of 1%."""

MIRROR_DENOMINATOR: Final = 100
"""The mirrored share's unit: a call is mirrored with probability value / this."""

REST_MIRROR_RUNTIME_KEY: Final = "tftrt.mirror_percent.rest"
"""Runtime key of the mirrored share of REST inference calls, in whole percent like
:data:`MIRROR_RUNTIME_KEY`; at start both are ``mirror_fraction``."""

UPSTREAM_CLUSTER: Final = "tf_serving_grpc"
RECORDER_CLUSTER: Final = "shape_recorder_grpc"
REST_UPSTREAM_CLUSTER: Final = "tf_serving_rest"
REST_RECORDER_CLUSTER: Final = "shape_recorder_rest"
ADMIN_CLUSTER: Final = "envoy_admin"
CLIENT_STAT_PREFIX: Final = "tftrt_grpc"
"""Stat prefix of the clients' listener (``envoy_http_tftrt_grpc_*`` in Prometheus)."""
REST_STAT_PREFIX: Final = "tftrt_rest"
"""Stat prefix of the clients' REST listener (``envoy_http_tftrt_rest_*``)."""

REST_REFUSED_STATUS: Final = 403
"""HTTP status of a REST call clients may not make through the proxy (TF Serving's status
for PERMISSION_DENIED)."""

PERMISSION_DENIED: Final = "7"
"""gRPC's status code for a method clients may not call."""

_ANY: Final = "type.googleapis.com/envoy."
_HCM: Final = _ANY + "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER: Final = _ANY + "extensions.filters.http.router.v3.Router"
_HTTP_OPTIONS: Final = _ANY + "extensions.upstreams.http.v3.HttpProtocolOptions"
_CONNECTIONS: Final = (
    _ANY + "extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig")

MAX_CLIENT_CONNECTIONS: Final = 10_000
"""Envoy accepts at most this many client connections at once (beyond, it refuses new ones)."""


def build_bootstrap(settings: EnvoySettings) -> dict[str, Any]:
    """The bootstrap for ``settings``, as the JSON document Envoy reads."""
    listeners = [_client_listener(settings)]
    clusters = [
        _cluster(UPSTREAM_CLUSTER, settings.upstream, settings, http2=True, guarded=False),
        _cluster(RECORDER_CLUSTER, settings.recorder, settings, http2=True, guarded=True),
    ]
    if settings.fronts_rest:
        assert settings.rest_listen and settings.rest_upstream and settings.rest_recorder
        listeners.append(_rest_listener(settings.rest_listen, settings))
        clusters += [
            _cluster(REST_UPSTREAM_CLUSTER, settings.rest_upstream, settings, http2=False,
                     guarded=False),
            _cluster(REST_RECORDER_CLUSTER, settings.rest_recorder, settings, http2=False,
                     guarded=True),
        ]
    if settings.stats_listen is not None:
        listeners.append(_stats_listener(settings.stats_listen))
        clusters.append(_cluster(ADMIN_CLUSTER, settings.admin, settings, http2=False,
                                 guarded=True))
    return {
        "node": {"id": "tftrt-sidecar", "cluster": "tftrt-sidecar"},
        "admin": {"address": _socket(settings.admin)},
        "layered_runtime": {"layers": [{"name": "admin", "admin_layer": {}}]},
        "overload_manager": {"resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {"@type": _CONNECTIONS,
                             "max_active_downstream_connections": MAX_CLIENT_CONNECTIONS},
        }]},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def mirror_runtime_value(fraction: float) -> int:
    """``fraction`` (0 to 1) as the runtime value of :data:`MIRROR_RUNTIME_KEY`: whole
    percent, and at least 1 for any share above 0 (a small share never rounds to none)."""
    value = round(fraction * MIRROR_DENOMINATOR)
    return max(value, 1) if fraction > 0 else 0


def write_bootstrap(settings: EnvoySettings, path: Path) -> Path:
    """Write the bootstrap for ``settings`` to ``path`` (JSON, replaced whole); return it."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(build_bootstrap(settings), indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def validate_bootstrap(binary: EnvoyBinary, path: Path) -> None:
    """Have Envoy check ``path`` without serving (``--mode validate``); EnvoyConfigError
    with Envoy's own reason if it refuses."""
    done = subprocess.run(
        [str(binary.path), "--mode", "validate", "-c", str(path), "--log-level", "error"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    if done.returncode != 0:
        reason = " ".join((done.stderr or done.stdout).split())[-600:]
        raise EnvoyConfigError(
            f"Envoy refused the configuration generated from the settings: {reason}",
            where=str(path), fix="check the tap, upstream and Envoy address settings")


def _client_listener(settings: EnvoySettings) -> dict[str, Any]:
    routes = [_forward_route(method.path, method.recorded, settings)
              for method in FORWARDED_METHODS]
    routes.append({
        "match": {"prefix": "/"},
        "direct_response": {"status": 200},
        "response_headers_to_add": [
            _header("content-type", "application/grpc"),
            _header("grpc-status", PERMISSION_DENIED),
            _header("grpc-message", "%REQ(:PATH):200% cannot be called through the "
                    "sidecar's proxy; clients may call /tensorflow.serving.PredictionService/"
                    "Predict, Classify, Regress, MultiInference, GetModelMetadata and "
                    "/tensorflow.serving.ModelService/GetModelStatus"),
        ],
    })
    manager = {
        "@type": _HCM,
        "stat_prefix": CLIENT_STAT_PREFIX,
        "codec_type": "HTTP2",
        "generate_request_id": False,
        "server_header_transformation": "PASS_THROUGH",
        "http2_protocol_options": {"max_concurrent_streams": 1024},
        "route_config": {
            "name": "tf_serving",
            "virtual_hosts": [{"name": "tf_serving", "domains": ["*"], "routes": routes}],
        },
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": _ROUTER, "suppress_envoy_headers": True},
        }],
    }
    return _listener("clients_grpc", settings.listen, manager, settings.max_request_bytes)


def _forward_route(path: str, recorded: bool, settings: EnvoySettings) -> dict[str, Any]:
    action: dict[str, Any] = {
        "cluster": UPSTREAM_CLUSTER,
        "timeout": "0s",  # no route deadline: the client's grpc-timeout is the deadline
        "max_stream_duration": {"grpc_timeout_header_max": "0s"},
    }
    if recorded:
        action["request_mirror_policies"] = [
            _mirror(RECORDER_CLUSTER, MIRROR_RUNTIME_KEY, settings)]
    return {"match": {"path": path}, "route": action,
            "request_headers_to_remove": ["x-forwarded-proto"]}


def _mirror(cluster: str, runtime_key: str, settings: EnvoySettings) -> dict[str, Any]:
    return {
        "cluster": cluster,
        "runtime_fraction": {
            "default_value": {
                "numerator": mirror_runtime_value(settings.mirror_fraction),
                "denominator": "HUNDRED",
            },
            "runtime_key": runtime_key,
        },
        "disable_shadow_host_suffix_append": True,
    }


def _rest_listener(address: Address, settings: EnvoySettings) -> dict[str, Any]:
    routes = [
        _rest_route("POST", PREDICTION_PATH,
                    [_mirror(REST_RECORDER_CLUSTER, REST_MIRROR_RUNTIME_KEY, settings)]),
        _rest_route("GET", STATUS_PATH, []),
        # TF Serving answers a browser's CORS preflight itself (with --enable_cors_support).
        _rest_route("OPTIONS", PREDICTION_PATH, []),
        _rest_route("OPTIONS", STATUS_PATH, []),
        {"match": {"prefix": "/"},
         "direct_response": {"status": REST_REFUSED_STATUS,
                             "body": {"inline_string": "refused"}}},
    ]
    manager = {
        "@type": _HCM,
        "stat_prefix": REST_STAT_PREFIX,
        "codec_type": "AUTO",  # HTTP/1.x, and HTTP/2 with prior knowledge (h2c)
        "generate_request_id": False,
        "server_header_transformation": "PASS_THROUGH",
        # TF Serving takes HTTP/1.0 too (load tools such as ab speak only that); one sent
        # without a Host header reaches TF Serving with this one.
        "http_protocol_options": {"accept_http_10": True,
                                  "default_host_for_http_10": "tf-serving"},
        "http2_protocol_options": {"max_concurrent_streams": 1024},
        "route_config": {
            "name": "tf_serving_rest",
            "virtual_hosts": [{"name": "tf_serving_rest", "domains": ["*"], "routes": routes}],
        },
        "local_reply_config": _rest_local_replies(),
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": _ROUTER, "suppress_envoy_headers": True},
        }],
    }
    return _listener("clients_rest", address, manager, settings.max_request_bytes)


def _rest_route(method: str, path_regex: str, mirrors: list[dict[str, Any]]) -> dict[str, Any]:
    action: dict[str, Any] = {
        "cluster": REST_UPSTREAM_CLUSTER,
        "timeout": "0s",  # no route deadline: TF Serving's own (--rest_api_timeout_in_ms) holds
    }
    if mirrors:
        action["request_mirror_policies"] = mirrors
    return {
        "match": {
            "safe_regex": {"regex": path_regex},
            "headers": [{"name": ":method", "string_match": {"exact": method}}],
        },
        "route": action,
        "request_headers_to_remove": ["x-forwarded-proto"],
    }


def _rest_local_replies() -> dict[str, Any]:
    # What Envoy answers itself on the REST port reads like TF Serving's errors:
    # {"error": "<message>"} as application/json. A refused call names itself.
    refused = (
        "%REQ(:METHOD)% %REQ(:PATH):200% cannot be called through the sidecar's proxy; "
        "clients may POST /v1/models/<name>[/versions/<n>|/labels/<label>]:predict, "
        ":classify or :regress and GET /v1/models/<name>[/versions/<n>|/labels/<label>]"
        "[/metadata]")
    return {
        "mappers": [{
            "filter": {"status_code_filter": {"comparison": {
                "op": "EQ",
                "value": {"default_value": REST_REFUSED_STATUS,
                          "runtime_key": "tftrt.rest_refused_status"},
            }}},
            "body_format_override": {"json_format": {"error": refused}},
        }],
        "body_format": {"json_format": {"error": "%LOCAL_REPLY_BODY%"}},
    }


def _stats_listener(address: Address) -> dict[str, Any]:
    manager = {
        "@type": _HCM,
        "stat_prefix": "stats",
        "codec_type": "AUTO",
        "route_config": {"name": "stats", "virtual_hosts": [{
            "name": "stats", "domains": ["*"], "routes": [
                {"match": {"path": "/stats/prometheus"}, "route": {"cluster": ADMIN_CLUSTER}},
                {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
            ],
        }]},
        "http_filters": [{"name": "envoy.filters.http.router",
                          "typed_config": {"@type": _ROUTER}}],
    }
    return _listener("stats", address, manager, 1 << 20)


def _listener(name: str, address: Address, manager: dict[str, Any],
              buffer_bytes: int) -> dict[str, Any]:
    return {
        "name": name,
        "address": _socket(address),
        "per_connection_buffer_limit_bytes": buffer_bytes,
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": manager,
        }]}],
    }


def _cluster(name: str, address: Address, settings: EnvoySettings, *, http2: bool,
             guarded: bool) -> dict[str, Any]:
    # TF Serving's cluster is never the reason a client call is refused: Envoy's default
    # circuit breakers (1024 requests) would be. The recorder's and admin's keep them, so a
    # slow recorder costs a bounded number of mirrored calls, then mirrors are dropped.
    limit = 1024 if guarded else 1_000_000
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC" if address.is_ip else "STRICT_DNS",
        "connect_timeout": f"{settings.connect_timeout_seconds}s",
        "per_connection_buffer_limit_bytes": settings.max_request_bytes,
        "circuit_breakers": {"thresholds": [{
            "max_connections": limit, "max_pending_requests": limit, "max_requests": limit,
            "max_retries": 0,
        }]},
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": _socket(address)}},
        ]}]},
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _HTTP_OPTIONS,
                "explicit_http_config": {"http2_protocol_options": {
                    "max_concurrent_streams": 1024}},
            },
        }
    return cluster


def _socket(address: Address) -> dict[str, Any]:
    return {"socket_address": {"address": address.host, "port_value": address.port}}


def _header(key: str, value: str) -> dict[str, Any]:
    return {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
