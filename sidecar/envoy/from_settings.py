"""The Envoy settings the sidecar's own settings describe: one place maps them, for the
Envoy that ``tftrt-sidecar run`` supervises and for the bootstrap
``tftrt-sidecar envoy-bootstrap`` writes for an Envoy container."""

from __future__ import annotations

from sidecar.base.errors import ConfigError
from sidecar.config import Settings
from sidecar.envoy.settings import EnvoySettings


def envoy_settings(settings: Settings) -> EnvoySettings:
    """Envoy in front of ``settings.tap.upstream`` on ``settings.tap.tap_listen``, mirroring
    to the recorder; ConfigError naming the setting when the tap is off (load_settings saw
    to it that a tap has its upstream)."""
    if settings.tap.tap_listen is None or settings.tap.upstream is None:
        raise ConfigError(field="tap_listen" if settings.tap.tap_listen is None else "upstream",
                          value=None, source="settings", problem="is not set",
                          fix="set tap_listen (where clients call, e.g. 0.0.0.0:8500) and "
                              "upstream (TF Serving's gRPC address, e.g. 127.0.0.1:8600)")
    rest = settings.tap.rest_listen is not None
    return EnvoySettings(
        listen=settings.tap.tap_listen,
        upstream=settings.tap.upstream,
        recorder=settings.tap.recorder_listen,
        admin=settings.tap.envoy_admin_listen,
        stats_listen=settings.tap.proxy_stats_listen,
        mirror_fraction=settings.tap.mirror_fraction,
        rest_listen=settings.tap.rest_listen,
        rest_upstream=settings.tap.rest_upstream if rest else None,
        rest_recorder=settings.tap.rest_recorder_listen if rest else None,
    )
