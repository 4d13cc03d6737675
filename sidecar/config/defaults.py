"""Every default setting of the sidecar, named, in one place.

Kubernetes manifests and the README use the same paths, so change them together.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Final

from sidecar.config.address import Address

DEFAULT_INCOMING_BASE: Final = Path("/models/incoming")
"""Where raw SavedModel versions land, as ``<model>/<version>/``."""

DEFAULT_SERVING_BASE: Final = Path("/models/serving")
"""TF Serving's model base paths live under here, as ``<model>/<version>/``."""

DEFAULT_STATE_DIR: Final = Path("/var/lib/tftrt-sidecar")
"""Durable state: the job journal and the shape store."""

DEFAULT_ENGINE_CACHE_DIR: Final = Path("/var/cache/tftrt-engines")
"""Compiled engines, namespaced by TF version and device model."""

DEFAULT_MODEL_CONFIG_FILE: Final = Path("/models/serving/models.config")
"""TF Serving's ``--model_config_file``, kept by the sidecar."""

DEFAULT_SETTLE_SECONDS: Final = 10.0
"""How long a version's files must stay unchanged before it counts as complete."""

DEFAULT_RESCAN_INTERVAL_SECONDS: Final = 2.0
"""How often the incoming base is rescanned."""

DEFAULT_MARKER_FILE: Final[str | None] = None
"""No marker file: completeness is judged by settling."""

DEFAULT_RETRY_BACKOFF_SECONDS: Final = 10.0
"""Wait before retrying a job that failed for a reason that can pass (a storage fault);
each further attempt waits twice as long..."""

DEFAULT_RETRY_BACKOFF_MAX_SECONDS: Final = 600.0
"""...up to this."""

DEFAULT_BACKEND: Final = "auto"
DEFAULT_PRECISION: Final = "FP32"
DEFAULT_ACCURACY: Final = "auto"
DEFAULT_MIN_TOP1_AGREEMENT: Final = 0.99
DEFAULT_MAX_ENGINES: Final = 4
DEFAULT_MINIMUM_SEGMENT_SIZE: Final = 3
DEFAULT_BUILD_AT_RUNTIME: Final = False
DEFAULT_KEEP_VERSIONS: Final = 2
DEFAULT_SERVE_ORIGINAL_FIRST: Final = True
"""Serve a landed version's original at once, while it is converted."""
DEFAULT_BATCH_SIZES: Final[tuple[int, ...]] = (1, 8)
DEFAULT_REBUILD_BELOW_COVERAGE: Final = 0.8
"""Rebuild when less than this share of recent traffic has shapes the served version was
built for (0 turns coverage-triggered rebuilds off)."""
DEFAULT_REBUILD_AFTER_SECONDS: Final = 600.0
"""...for at least this long."""
DEFAULT_REBUILD_MIN_REQUESTS: Final = 100
"""...judged only once the shape store's window holds at least this many requests."""

ENV_PREFIX: Final = "TFTRT_SIDECAR_"
"""Environment variables ``TFTRT_SIDECAR_<FIELD>`` override the config file."""

ENV_CONFIG_FILE: Final = ENV_PREFIX + "CONFIG"
"""Environment variable naming the config file when ``--config`` is not given."""

DEFAULT_TAP_LISTEN: Final = Address("0.0.0.0", 8500)
"""Where clients call (Envoy, in front of TF Serving): TF Serving's usual gRPC port, so
clients need no change."""

DEFAULT_UPSTREAM: Final = Address("127.0.0.1", 8600)
"""TF Serving in the same pod, started with ``--port=8600``; Envoy forwards here."""

DEFAULT_RECORDER_LISTEN: Final = Address("127.0.0.1", 8702)
"""The shape recorder Envoy mirrors a sample of inference calls to (loopback)."""

DEFAULT_ENVOY_ADMIN_LISTEN: Final = Address("127.0.0.1", 9901)
"""Envoy's admin API (loopback only: it can change Envoy's runtime and stop it)."""

DEFAULT_REST_UPSTREAM: Final = Address("127.0.0.1", 8601)
"""TF Serving's REST API in the same pod, started with ``--rest_api_port=8601``; Envoy's
REST front (``rest_listen``, the pod uses ``0.0.0.0:8501``) forwards here."""

DEFAULT_REST_RECORDER_LISTEN: Final = Address("127.0.0.1", 8703)
"""The shape recorder's REST side, where Envoy mirrors REST inference calls (loopback)."""

DEFAULT_MIRROR_FRACTION: Final = 1.0
"""The largest share of inference calls Envoy mirrors to the recorder, 0 to 1 in steps
of 0.01 (all calls are recorded while traffic stays under the recording budget)."""

DEFAULT_MIRROR_BUDGET_BYTES_PER_SECOND: Final = 8 << 20
"""Mirrored request bytes per second the recorder is kept to: parsing costs about 2 us per
KiB here, so 8 MiB/s is about 2% of a core, whatever the size of the requests."""

DEFAULT_MIRROR_BUDGET_PER_SECOND: Final = 100.0
"""Mirrored calls per second the recorder is kept to: above it the sidecar lowers the
share through Envoy's runtime (about 5% of a core at 0.4 ms of recorder CPU per call)."""

DEFAULT_ADMIN_LISTEN: Final = Address("127.0.0.1", 8700)
"""The admin gRPC API: localhost only unless configured otherwise."""

DEFAULT_METRICS_LISTEN: Final = Address("0.0.0.0", 9102)
"""Prometheus ``/metrics`` over HTTP."""

TF_SERVING_REST_PORT: Final = 8501
"""TF Serving's REST port (not proxied: the tap records gRPC traffic only)."""

DEFAULT_LEASE_SECONDS: Final = 30.0
"""How long a fleet replica's claim on a key lasts without renewal before another takes over."""

DEFAULT_SHAPE_SHARE_SECONDS: Final = 30.0
"""How often a fleet replica writes its recorded shape counts into the store."""


def default_replica_id() -> str:
    """The host name: in Kubernetes, the pod's name, unique within its namespace."""
    return socket.gethostname()
