"""A URL where a path is expected is refused at start (issue 24, item 2).

Taken as a path, ``--store s3://fleet/p`` once became the local directory
``./s3:/fleet/p``, and a one-replica "fleet" ran there with no error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.base.errors import ConfigError
from sidecar.cli import EXIT_USAGE
from sidecar.config import build_argument_parser, load_settings
from sidecar.config.loading import SETTINGS_BY_FLAT_NAME
from sidecar.config.schema import field_specs, setting
from sidecar.config.values import PathParser, ValueParser

REPO_ROOT = Path(__file__).resolve().parents[2]
SIDECAR = Path(sys.executable).with_name("tftrt-sidecar")

PATH_SETTINGS = {name: spec for name, spec in SETTINGS_BY_FLAT_NAME.items()
                 if isinstance(spec.parse, PathParser)}
"""Every setting that takes a path, as the declarations say, by flat name."""

URLS = ["s3://fleet/p", "gs://bucket/models", "hdfs://namenode:8020/x", "S3://Fleet/P",
        "file:///models/incoming", "  s3://x/p"]
LOCAL_BUT_ODD = ["C:/models", "C:\\models", "./s3://x", "s3:/x", "models:v2", "a://b",
                 "x/s3://y", "-dash"]
"""Legal local paths that look a bit like URLs: none starts with ``scheme://``.
(``a://b`` does: it is the one URL here, and must be refused.)"""


def test_the_issue_names_path_settings_and_each_has_its_flag() -> None:
    flags = {spec.flag.name for spec in PATH_SETTINGS.values() if spec.flag is not None}
    assert {"--incoming", "--serving", "--state", "--engine-cache", "--store",
            "--model-config-file"} <= flags
    assert len(flags) == len(PATH_SETTINGS)


@pytest.mark.parametrize("name", sorted(PATH_SETTINGS))
@pytest.mark.parametrize("url", URLS)
def test_every_path_setting_refuses_a_url_from_a_flag_the_environment_and_toml(
        tmp_path: Path, name: str, url: str) -> None:
    spec = PATH_SETTINGS[name]
    assert spec.flag is not None
    config = tmp_path / "sidecar.toml"
    config.write_text(f"{name} = {json.dumps(url)}\n", encoding="utf-8")
    ways = [
        (build_argument_parser().parse_args([spec.flag.name, url]), {}, None,
         f"command-line flag {spec.flag.name}"),
        (None, {f"TFTRT_SIDECAR_{name.upper()}": url}, None,
         f"environment variable TFTRT_SIDECAR_{name.upper()}"),
        (None, {}, config, f"config file {config}"),
    ]
    scheme = url.strip().split(":")[0].lower()
    for flags, environ, path, source in ways:
        with pytest.raises(ConfigError) as caught:
            load_settings(flags, environ, path)
        message = str(caught.value)
        assert caught.value.field == name
        # The value as given (not joined to the config file's directory), where, what
        # is supported, the fix; one line.
        assert caught.value.value == url, message
        assert f"is a URL ({scheme}://)" in message
        assert "it takes a local path only" in message
        assert source in message
        assert "Fix: set" in message and "mount" in message
        assert "\n" not in message


@pytest.mark.parametrize("value", LOCAL_BUT_ODD)
def test_odd_local_paths_are_still_paths(tmp_path: Path, value: str) -> None:
    if value == "a://b":
        with pytest.raises(ConfigError, match=r"is a URL \(a://\)"):
            load_settings({"store": value}, {})
        return
    assert load_settings({"store": value}, {}).fleet.store == Path(os.path.abspath(value))
    config = tmp_path / "sidecar.toml"
    config.write_text(f"store = {json.dumps(value)}\n", encoding="utf-8")
    # In a config file a relative path is still taken from the file's directory.
    assert load_settings(None, {}, config).fleet.store == Path(os.path.abspath(tmp_path / value))


def test_a_setting_declares_the_url_schemes_it_takes() -> None:
    # The shape a later issue (s3:// for the store) gives a setting: the schemes are part
    # of its one declaration, and the refusal of the others names them.
    def parse_s3(value: object, field: str, source: str) -> str:
        return f"s3 location {value}"

    s3: ValueParser = parse_s3

    @dataclass(frozen=True)
    class WithS3:
        store: object = setting(None, PathParser(optional=True, urls={"s3": s3}), "--store",
                                "DIR", "the store")

    spec = field_specs(WithS3)["store"]
    assert spec.parse("s3://fleet/p", "store", "a test") == "s3 location s3://fleet/p"
    assert spec.parse("/mnt/fleet", "store", "a test") == Path("/mnt/fleet")
    assert spec.parse("", "store", "a test") is None
    assert spec.from_config_file("s3://fleet/p", Path("/etc")) == "s3://fleet/p"
    assert spec.from_config_file("fleet", Path("/etc")) == "/etc/fleet"
    with pytest.raises(ConfigError, match=r"it takes a local path or a URL \(s3://\)"):
        spec.parse("gs://fleet/p", "store", "a test")


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SIDECAR), "run", "--once", "--incoming", "in", "--serving", "srv",
         "--state", "state", "--engine-cache", "engines", "--settle-seconds", "0", *args],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        capture_output=True, text=True, timeout=300, check=False,
    )


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(("way", "flag"), [
    ("flag", "--store"), ("environment", "TFTRT_SIDECAR_STORE"), ("toml", "config file"),
])
def test_the_real_cli_refuses_a_store_url_in_one_line_and_creates_nothing(
        tmp_path: Path, way: str, flag: str) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "srv").mkdir()
    config = tmp_path / "sidecar.toml"
    config.write_text('store = "gs://fleet/p"\n', encoding="utf-8")
    before = _tree(tmp_path)
    if way == "flag":
        done = _run(tmp_path, "--store", "s3://fleet/p")
    elif way == "environment":
        done = _run(tmp_path, env={"TFTRT_SIDECAR_STORE": "hdfs://nn/fleet"})
    else:
        done = _run(tmp_path, "--config", str(config))
    assert done.returncode == EXIT_USAGE, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("tftrt-sidecar: error: store = ")
    assert flag in lines[0] and "it takes a local path only" in lines[0]
    # Refused before anything started: no s3:/gs:/hdfs: directory, no state, nothing.
    assert _tree(tmp_path) == before
