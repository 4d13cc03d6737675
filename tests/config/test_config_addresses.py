"""Every address setting is read by the one parser, :meth:`Address.parse`, through the real
settings loading (flags, environment, TOML), and the components built from them take the
parsed :class:`Address`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sidecar.admin.settings import AdminSettings
from sidecar.base.errors import ConfigError
from sidecar.config import Address, Settings, build_argument_parser, load_settings
from sidecar.config.loading import SETTINGS_BY_FLAT_NAME
from sidecar.config.values import parse_address, parse_optional_address
from sidecar.envoy.from_settings import envoy_settings
from sidecar.metrics import MetricsServer
from sidecar.recorder.settings import RecorderSettings

ADDRESS_FIELDS = [name for name, spec in SETTINGS_BY_FLAT_NAME.items()
                  if spec.parse in (parse_address, parse_optional_address)]


def _value(settings: Settings, flat_name: str) -> Any:
    spec = SETTINGS_BY_FLAT_NAME[flat_name]
    return getattr(getattr(settings, spec.section), spec.name)


def test_every_host_port_setting_is_an_address() -> None:
    assert len(ADDRESS_FIELDS) == 10
    settings = load_settings(None, {})
    for name in ADDRESS_FIELDS:
        value = _value(settings, name)
        assert value is None or isinstance(value, Address), name


@pytest.mark.parametrize("field", ADDRESS_FIELDS)
def test_each_address_setting_takes_a_good_address_from_flags_env_and_toml(
    field: str, tmp_path: Path
) -> None:
    flag = "--" + field.replace("_", "-")
    from_flags = load_settings(build_argument_parser().parse_args([flag, "10.1.2.3:65535"]), {})
    assert _value(from_flags, field) == Address("10.1.2.3", 65535)
    from_env = load_settings(None, {f"TFTRT_SIDECAR_{field.upper()}": "[::1]:1"})
    assert _value(from_env, field) == Address("::1", 1)
    assert str(_value(from_env, field)) == "[::1]:1"
    config = tmp_path / "sidecar.toml"
    config.write_text(f'{field} = "pod.example:8500"\n')
    from_toml = load_settings(None, {}, config)
    assert _value(from_toml, field) == Address("pod.example", 8500)
    spec = SETTINGS_BY_FLAT_NAME[field]
    config.write_text(f'[{spec.section}]\n{spec.name} = "pod.example:8501"\n')
    from_table = load_settings(None, {}, config)
    assert _value(from_table, field) == Address("pod.example", 8501)


@pytest.mark.parametrize("bad", ["127.0.0.1:65536", "127.0.0.1:99999", "127.0.0.1:0",
                                 "127.0.0.1", "127.0.0.1:", ":8500", "::1:8500",
                                 "[not-v6]:8500", "host:http"])
@pytest.mark.parametrize("field", ["admin_listen", "recorder_listen"])
def test_a_bad_address_names_the_setting_its_source_and_the_fix(
    bad: str, field: str, tmp_path: Path
) -> None:
    flag = "--" + field.replace("_", "-")
    with pytest.raises(ConfigError) as raised:
        load_settings(build_argument_parser().parse_args([flag, bad]), {})
    message = str(raised.value)
    assert message.startswith(f"{field} = {bad!r} is not host:port with a port from 1 to 65535")
    assert f"from command-line flag {flag}" in message
    assert f"Fix: set {field} to HOST:PORT" in message

    with pytest.raises(ConfigError, match=f"environment variable TFTRT_SIDECAR_{field.upper()}"):
        load_settings(None, {f"TFTRT_SIDECAR_{field.upper()}": bad})
    config = tmp_path / "sidecar.toml"
    config.write_text(f'{field} = "{bad}"\n')
    with pytest.raises(ConfigError, match=f"config file {config}"):
        load_settings(None, {}, config)


def test_a_port_number_without_a_host_in_toml_is_refused() -> None:
    with pytest.raises(ConfigError, match="metrics_listen = 9102 is not host:port"):
        load_settings({"metrics_listen": 9102}, {})


def test_an_address_that_can_be_off_says_so_and_an_empty_one_is_off() -> None:
    assert load_settings(None, {"TFTRT_SIDECAR_ADMIN_LISTEN": " "}).admin.listen is None
    with pytest.raises(ConfigError, match=r"or to an empty string \(off\)"):
        load_settings(None, {"TFTRT_SIDECAR_ADMIN_LISTEN": "localhost:65536"})
    with pytest.raises(ConfigError) as raised:  # always on: no "off" to offer
        load_settings(None, {"TFTRT_SIDECAR_RECORDER_LISTEN": ""})
    assert "empty string" not in str(raised.value)


def test_envoy_is_set_up_from_the_parsed_addresses() -> None:
    settings = load_settings({"tap_listen": "[::]:8500", "upstream": "127.0.0.1:8600",
                              "proxy_stats_listen": "0.0.0.0:9103"}, {})
    proxy = envoy_settings(settings)
    assert proxy.listen == Address("::", 8500) and proxy.upstream == Address("127.0.0.1", 8600)
    assert proxy.stats_listen == Address("0.0.0.0", 9103) and proxy.rest_listen is None
    assert proxy.recorder == settings.tap.recorder_listen and proxy.admin.is_loopback


def test_components_take_the_parsed_address_and_port_0_only_where_they_pick_one() -> None:
    free = Address.parse("127.0.0.1:0", "listen", free_port=True)
    assert RecorderSettings(listen=free).listen == Address("127.0.0.1", 0)
    assert AdminSettings(listen=free).listen == free
    assert MetricsServer(free, CollectorRegistry()).port == 0
    assert AdminSettings().listen == Address("127.0.0.1", 8700), "localhost by default"
    for bad in ("127.0.0.1:65536", "127.0.0.1:99999", "127.0.0.1", "::1:8700"):
        with pytest.raises(ConfigError, match=r"listen = .* from 0 \(a free port\) to 65535"):
            Address.parse(bad, "listen", free_port=True)


def test_a_recorders_settings_stay_comparable_and_replaceable() -> None:
    settings = RecorderSettings(listen=Address("127.0.0.1", 8702))
    moved = dataclasses.replace(settings, listen=Address("127.0.0.1", 8703))
    assert moved.listen == Address("127.0.0.1", 8703) and moved != settings
    assert RecorderSettings(listen=Address("127.0.0.1", 8702)) == settings
