"""The Envoy settings the sidecar's own settings describe: one place maps them, for the
Envoy that ``tftrt-sidecar run`` supervises and for the bootstrap
``tftrt-sidecar envoy-bootstrap`` writes for an Envoy container."""

from __future__ import annotations

from sidecar.base.errors import ConfigError
from sidecar.config import Settings
from sidecar.envoy.settings import EnvoySettings


def envoy_settings(settings: Settings) -> EnvoySettings:
    """Envoy in front of ``settings.upstream`` on ``settings.tap_listen``, mirroring to the
    recorder; ConfigError naming the setting when one is missing or wrong."""
    if settings.tap_listen is None or settings.upstream is None:
        raise ConfigError(field="tap_listen" if settings.tap_listen is None else "upstream",
                          value=None, source="settings", problem="is not set",
                          fix="set tap_listen (where clients call, e.g. 0.0.0.0:8500) and "
                              "upstream (TF Serving's gRPC address, e.g. 127.0.0.1:8600)")
    rest = settings.rest_listen is not None
    return EnvoySettings(
        listen=settings.tap_listen,
        upstream=settings.upstream,
        recorder=settings.recorder_listen,
        admin=settings.envoy_admin_listen,
        stats_listen=settings.proxy_stats_listen,
        mirror_fraction=settings.mirror_fraction,
        rest_listen=settings.rest_listen,
        rest_upstream=settings.rest_upstream if rest else None,
        rest_recorder=settings.rest_recorder_listen if rest else None,
    )
