"""``tftrt-sidecar demo`` as a real process: its closing request is answered the way TF
Serving answers a client, after the version's warmup file was replayed (issue 24, item
4b: it used to be a fresh Session's first call, 30 ms against about 2 ms steady)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sidecar.tfserving.warmup import read_predict_requests

REPO_ROOT = Path(__file__).resolve().parents[2]
SIDECAR = Path(sys.executable).with_name("tftrt-sidecar")

_WARMUP = re.compile(r"^  warmup, as TF Serving replays it before the version is AVAILABLE: "
                     r"(\d+) record\(s\) in ([\d.]+) ms \(the first ([\d.]+) ms\)$", re.M)
_ANSWER = re.compile(r"^  then serving_default\(.*\) answered in ([\d.]+) ms", re.M)


def test_the_demo_replays_the_warmup_file_then_answers_and_prints_both_times(
        tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SIDECAR), "demo", "--workdir", str(tmp_path / "demo")],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The original is served first as 1000; the converted form took over as 1001.
    served_first = re.search(r"^  published the original model because served first.*\n.*"
                             r"/1000\n  served ([\d.]+) s after landing$", done.stdout, re.M)
    converted = re.search(r"^  published the converted model\n.*/1001\n"
                          r"  served ([\d.]+) s after landing$", done.stdout, re.M)
    assert served_first is not None and converted is not None, done.stdout
    assert float(served_first[1]) < float(converted[1])
    published = tmp_path / "demo" / "serving" / "demo" / "1001"
    assert f"one request served from {published}" in done.stdout
    warmup, answer = _WARMUP.search(done.stdout), _ANSWER.search(done.stdout)
    assert warmup is not None and answer is not None, done.stdout
    assert warmup.start() < answer.start(), "replayed first, then answered"
    records, total_ms, first_ms = int(warmup[1]), float(warmup[2]), float(warmup[3])
    assert records == len(read_predict_requests(published)) >= 1
    assert 0 < first_ms <= total_ms
    # The promise: the first calls' cost is paid by warmup, not by the request after it.
    assert float(answer[1]) < first_ms, done.stdout
    assert re.search(r"output_0: shape \[1, 10\]", done.stdout), done.stdout
