"""The network settings: tap, upstream, admin API and metrics addresses."""

from __future__ import annotations

import pytest

from sidecar.base.errors import ConfigError
from sidecar.config import Address, build_argument_parser, load_settings
from sidecar.config.defaults import DEFAULT_UPSTREAM


def test_servers_are_off_unless_asked_for() -> None:
    settings = load_settings(None, {})
    assert (settings.tap.tap_listen, settings.admin.listen, settings.metrics.listen) == (
        None, None, None)
    assert settings.tap.upstream == DEFAULT_UPSTREAM


def test_flags_and_environment_set_addresses() -> None:
    flags = build_argument_parser().parse_args(
        ["--tap-listen", "0.0.0.0:8500", "--upstream", "127.0.0.1:9000",
         "--admin-listen", "[::1]:8700"])
    settings = load_settings(flags, {"TFTRT_SIDECAR_METRICS_LISTEN": "127.0.0.1:9102"})
    assert settings.tap.tap_listen == Address("0.0.0.0", 8500)
    assert settings.tap.upstream == Address("127.0.0.1", 9000)
    assert settings.admin.listen == Address("::1", 8700)
    assert str(settings.admin.listen) == "[::1]:8700"
    assert settings.metrics.listen == Address("127.0.0.1", 9102)


@pytest.mark.parametrize("bad", ["8500", "host:port", "localhost:70000", ":8500"])
def test_a_bad_address_names_the_field_and_the_fix(bad: str) -> None:
    with pytest.raises(ConfigError, match="tap_listen") as raised:
        load_settings({"tap_listen": bad}, {})
    assert "HOST:PORT" in str(raised.value)
