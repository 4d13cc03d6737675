"""The command-line programs keep TensorFlow quiet unless asked, and print their version."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

_TF_NOISE = re.compile(r"oneDNN|cuda|cuInit|absl::InitializeLog|cpu_feature_guard")
_OUR_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR) ")


def _python(code: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)


def test_tensorflow_start_up_lines_are_hidden_unless_verbose() -> None:
    code = ("from converter.console import quiet_tensorflow; quiet_tensorflow(verbose={}); "
            "import tensorflow as tf; print(int(tf.constant(1) + 1))")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = _python(code.format(False), env=env)
    loud = _python(code.format(True), env=env)
    assert quiet.returncode == loud.returncode == 0
    assert quiet.stdout.strip() == loud.stdout.strip() == "2"
    assert quiet.stderr == "", quiet.stderr
    assert _TF_NOISE.search(loud.stderr), "--verbose must keep TensorFlow's own lines"


def test_a_level_the_user_set_is_kept() -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    done = _python("from converter.console import quiet_tensorflow; "
                   "quiet_tensorflow(verbose=False); import os; "
                   "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])", env=env)
    assert done.stdout.strip() == "0" and _TF_NOISE.search(done.stderr)


def test_demo_prints_only_our_log_lines_and_serves_a_request(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "demo", "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    strangers = [line for line in done.stderr.splitlines() if not _OUR_LOG_LINE.match(line)]
    assert strangers == [], strangers
    assert "one request served from" in done.stdout
    assert re.search(r"output_0: shape \[1, 10\]", done.stdout), done.stdout


def test_both_programs_print_their_version() -> None:
    for module in ("converter.cli", "sidecar.cli"):
        done = subprocess.run([sys.executable, "-m", module, "--version"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0
        assert re.fullmatch(r"tftrt(-sidecar)? \d+\.\d+\.\d+\S*\n", done.stdout), done.stdout
