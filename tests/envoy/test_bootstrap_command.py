"""``tftrt-sidecar envoy-bootstrap``: the bootstrap an Envoy container of the pod runs with,
written from the same settings as ``run`` and checked by Envoy before it is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sidecar.envoy.bootstrap import MIRROR_RUNTIME_KEY


def _bootstrap(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sidecar.cli", "envoy-bootstrap", *flags],
                          capture_output=True, text=True, timeout=120)


def test_the_pods_bootstrap_is_written_and_checked(tmp_path: Path) -> None:
    out = tmp_path / "envoy" / "envoy.json"
    done = _bootstrap("--tap-listen", "0.0.0.0:8500", "--upstream", "127.0.0.1:8600",
                      "--rest-listen", "0.0.0.0:8501", "--proxy-stats-listen", "0.0.0.0:9103",
                      "--mirror-fraction", "0.25", "--out", str(out))
    assert done.returncode == 0, done.stderr
    bootstrap = json.loads(out.read_text())
    listeners = {item["name"]: item["address"]["socket_address"]["port_value"]
                 for item in bootstrap["static_resources"]["listeners"]}
    assert sorted(listeners.values()) == [8500, 8501, 9103]
    assert bootstrap["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    assert f'"runtime_key": "{MIRROR_RUNTIME_KEY}"' in out.read_text()
    assert '"numerator": 25' in out.read_text()


def test_a_setting_envoy_refuses_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "envoy.json"
    done = _bootstrap("--tap-listen", "localhost:8500", "--out", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "malformed IP address: localhost" in lines[0], done.stderr
    assert "Fix:" in lines[0]
    assert list(tmp_path.iterdir()) == []
