"""Test-only: call a function in a fresh process with oneDNN on.

TensorFlow decides whether oneDNN runs its CPU kernels once, when it is imported,
and int8 kernels run only with it on; the test process keeps the machine's default.
The function returns something JSON can carry; it comes back as the answer.
Run as: python -m tests.support.onednn_child MODULE:FUNCTION [ARG ...]
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import subprocess
import sys
from typing import Any


def in_onednn_process(target: str, *arguments: str) -> Any:
    """`module:function(*arguments)` run in a child process with oneDNN on."""
    root = pathlib.Path(__file__).resolve().parents[2]
    environment = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1", TF_CPP_MIN_LOG_LEVEL="2")
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(root), environment.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "tests.support.onednn_child", target,
                           *arguments], env=environment, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _main(target: str, *arguments: str) -> None:
    module, _, function = target.partition(":")
    print(json.dumps(getattr(importlib.import_module(module), function)(*arguments)))


if __name__ == "__main__":
    _main(*sys.argv[1:])
