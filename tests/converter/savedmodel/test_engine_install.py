"""Installing engines into a node's cache while other processes install the same ones:
real files, real processes."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from converter import BuildDevice, engine_namespace
from converter.savedmodel.engine_cache import ENGINES_SUBDIR
from tests.support.waiting import wait_until

DEVICE = BuildDevice(kind="CPU", model="install test")

ROUNDS = 40
"""Fresh caches raced for in turn: each round, every process installs every engine."""

_INSTALL = """
import os, pathlib, sys, time
from converter import BuildDevice, install_engines, engine_namespace
model, caches, go = (pathlib.Path(arg) for arg in sys.argv[1:4])
engine_namespace(BuildDevice(kind="CPU", model="install test"))  # TensorFlow loaded
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.001)
for round in range(int(sys.argv[4])):
    install_engines(model, caches / str(round), BuildDevice(kind="CPU", model="install test"))
"""


def test_replicas_installing_the_same_engines_at_once_leave_whole_files(
    tmp_path: pathlib.Path,
) -> None:
    namespace = engine_namespace(DEVICE)
    engines = tmp_path / "model" / ENGINES_SUBDIR / namespace
    engines.mkdir(parents=True)
    written = {f"entry-{i}": os.urandom(1 << 20) for i in range(8)}
    for name, data in written.items():
        (engines / name).write_bytes(data)
    go = tmp_path / "go"

    # Three processes, as three replicas on one node sharing its cache, racing each file.
    processes = [subprocess.Popen([sys.executable, "-c", _INSTALL, str(tmp_path / "model"),
                                   str(tmp_path / "caches"), str(go), str(ROUNDS)],
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        wait_until(lambda: len(list(tmp_path.glob("ready-*"))) == 3, 120, "three installers")
        go.touch()  # all start together
        errors = [process.communicate(timeout=300)[1] for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait()

    assert [process.returncode for process in processes] == [0, 0, 0], errors
    for round in range(ROUNDS):
        installed = tmp_path / "caches" / str(round) / namespace
        assert {p.name: p.read_bytes() for p in installed.iterdir()} == written, round
