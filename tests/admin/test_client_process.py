"""``tftrt-sidecar admin`` as a user runs it: a separate process against a running server.

It must not load TensorFlow (a gRPC client needs none of it, and TensorFlow costs
seconds and prints C++ start-up lines), must accept the shared flags before and after
the command, and must print nothing on standard error when the call succeeds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.admin.conftest import AdminStand

_CHILD = """
import sys
from sidecar.cli import main
status = main(sys.argv[1:])
loaded = sorted(name for name in sys.modules if name == "tensorflow" or name.startswith("keras"))
print("LOADED=" + ",".join(loaded), file=sys.stderr)
sys.exit(status)
"""

_REPO = Path(__file__).resolve().parents[2]


def _admin(*argv: str) -> tuple[int, str, str, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, "admin", *argv],
        capture_output=True, text=True, timeout=60, cwd=_REPO,
    )
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - start


def test_admin_cli_loads_no_tensorflow_and_takes_flags_on_either_side(
    stand: AdminStand,
) -> None:
    stand.land("mlp", 1)
    before = _admin("--address", stand.address, "--json", "list")
    after = _admin("list", "--address", stand.address, "--json")
    mixed = _admin("--address", "127.0.0.1:1", "list", "--json", "--address", stand.address)
    for status, out, err, _ in (before, after, mixed):
        assert status == 0, err
        assert err.strip() == "LOADED=", f"stderr must hold nothing but our marker: {err!r}"
        assert isinstance(json.loads(out)["models"], list)
    assert before[1] == after[1] == mixed[1]
    # A TensorFlow import alone takes seconds here; the client answers well under one.
    assert min(before[3], after[3], mixed[3]) < 1.5, [before[3], after[3], mixed[3]]


def test_admin_cli_errors_are_one_line_with_the_fix() -> None:
    status, out, err, _ = _admin("list", "--timeout", "soon")
    lines = [line for line in err.splitlines() if not line.startswith("LOADED=")]
    assert status == 2 and out == ""
    assert len(lines) == 1 and "--timeout" in lines[0] and "--help" in lines[0], err
