"""The Envoy settings the sidecar's own settings describe: one place maps them, for the
Envoy that ``tftrt-sidecar run`` supervises and for the bootstrap
``tftrt-sidecar envoy-bootstrap`` writes for an Envoy container."""

from __future__ import annotations

from sidecar.base.errors import ConfigError
from sidecar.config import Settings
from sidecar.envoy.settings import EnvoySettings


def envoy_settings(settings: Settings) -> EnvoySettings:
    """Envoy in front of ``settings.tap.upstream`` on ``settings.tap.tap_listen``, mirroring
    to the recorder; ConfigError when the tap is off (Envoy has nowhere to listen)."""
    tap = settings.tap
    if tap.tap_listen is None:
        raise ConfigError(field="tap_listen", value=None, source="settings",
                          problem="is not set", fix="set tap_listen (where clients call, e.g. "
                          "0.0.0.0:8500)")
    assert tap.upstream is not None, "load_settings refuses a tap without its upstream"
    rest = tap.rest_listen is not None
    return EnvoySettings(
        listen=tap.tap_listen,
        upstream=tap.upstream,
        recorder=tap.recorder_listen,
        admin=tap.envoy_admin_listen,
        stats_listen=tap.proxy_stats_listen,
        mirror_fraction=tap.mirror_fraction,
        rest_listen=tap.rest_listen,
        rest_upstream=tap.rest_upstream if rest else None,
        rest_recorder=tap.rest_recorder_listen if rest else None,
    )
