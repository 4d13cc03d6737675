"""The Envoy settings the sidecar's own settings describe: one place maps them, for the
Envoy that ``tftrt-sidecar run`` supervises and for the bootstrap
``tftrt-sidecar envoy-bootstrap`` writes for an Envoy container."""

from __future__ import annotations

from sidecar.config import Settings
from sidecar.envoy.settings import Address, EnvoySettings
from sidecar.errors import ConfigError


def envoy_settings(settings: Settings) -> EnvoySettings:
    """Envoy in front of ``settings.upstream`` on ``settings.tap_listen``, mirroring to the
    recorder; ConfigError naming the setting when one is missing or wrong."""
    if settings.tap_listen is None or settings.upstream is None:
        raise ConfigError(field="tap_listen" if settings.tap_listen is None else "upstream",
                          value=None, source="settings", problem="is not set",
                          fix="set tap_listen (where clients call, e.g. 0.0.0.0:8500) and "
                              "upstream (TF Serving's gRPC address, e.g. 127.0.0.1:8600)")
    stats, rest = settings.proxy_stats_listen, settings.rest_listen
    return EnvoySettings(
        listen=Address.parse(settings.tap_listen, "tap_listen"),
        upstream=Address.parse(settings.upstream, "upstream"),
        recorder=Address.parse(settings.recorder_listen, "recorder_listen"),
        admin=Address.parse(settings.envoy_admin_listen, "envoy_admin_listen"),
        stats_listen=None if stats is None else Address.parse(stats, "proxy_stats_listen"),
        mirror_fraction=settings.mirror_fraction,
        rest_listen=None if rest is None else Address.parse(rest, "rest_listen"),
        rest_upstream=None if rest is None else Address.parse(settings.rest_upstream,
                                                              "rest_upstream"),
        rest_recorder=None if rest is None else Address.parse(settings.rest_recorder_listen,
                                                              "rest_recorder_listen"),
    )
