"""``tftrt-sidecar run`` prints only its own log lines: TensorFlow's start-up lines, from
the sidecar and from the recorder's own process, and Envoy's warnings are kept off
standard error by default."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.e2e import free_port

_OUR_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR) ")


def test_run_with_its_tap_prints_only_our_log_lines(tmp_path: Path) -> None:
    (tmp_path / "incoming").mkdir()
    command = [
        sys.executable, "-m", "sidecar.cli", "run",
        "--incoming", str(tmp_path / "incoming"), "--serving", str(tmp_path / "serving"),
        "--state", str(tmp_path / "state"), "--engine-cache", str(tmp_path / "cache"),
        "--model-config-file", str(tmp_path / "serving" / "models.config"),
        "--tap-listen", f"127.0.0.1:{free_port()}", "--upstream", f"127.0.0.1:{free_port()}",
        "--admin-listen", f"127.0.0.1:{free_port()}",
        "--metrics-listen", f"127.0.0.1:{free_port()}",
        "--recorder-listen", f"127.0.0.1:{free_port()}",
        "--envoy-admin-listen", f"127.0.0.1:{free_port()}",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True)
    assert process.stderr is not None
    lines: list[str] = []
    try:
        for line in process.stderr:  # the tap is up before the admin API starts serving
            lines.append(line.rstrip("\n"))
            if "admin API serving" in line:
                break
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    lines += rest.splitlines()
    assert any("admin API serving" in line for line in lines), lines
    strangers = [line for line in lines if not _OUR_LOG_LINE.match(line)]
    assert strangers == [], strangers
