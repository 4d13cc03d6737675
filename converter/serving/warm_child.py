"""A child process that imports TensorFlow once and answers requests in turn, kept warm
between builds: starting one costs seconds of imports, more than a small model's whole
measurement, and a sidecar or a test run measures many models one after another.

The parent writes a line ``MODULE REQUEST_DIR`` to the child's stdin; the child calls
``MODULE.answer(REQUEST_DIR)`` and writes the result as one JSON line after
`_ANSWER`. A child idle for `IDLE_SECONDS` is closed; a child whose environment
(the variables that configure TensorFlow) no longer matches the caller's is replaced;
a request that fails closes its child, so no state a failure left reaches the next
request. Only work that leaves nothing behind in the process uses it (timing in
Sessions, each closed after its request); work with global state, or settings that
take effect at start, runs in a fresh child (`child_process.run_child`).

Run as: python -m converter.serving.warm_child (by `ask` only).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Mapping
from typing import IO, Any

from converter.serving.child_process import ChildFailed, child_environment

IDLE_SECONDS = 60.0
"""How long a warm child waits for its next request before it is closed (it holds
TensorFlow's memory, a few hundred MB, while it waits)."""

_ANSWER = "tftrt-warm-child-answer "
"""Marks the child's answer lines: TensorFlow may print to stdout too."""

_CONFIGURING = ("TF_", "XLA_", "OMP_", "KMP_", "MKL", "DNNL", "ONEDNN", "CUDA", "PYTHON")
"""Prefixes of the environment variables a child reads at start: a warm child serves
a caller only while these are as they were when it started."""


def _configuration(environment: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environment.items() if k.startswith(_CONFIGURING)}


class _Child:
    """One running warm child and the file its stderr goes to."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.configuration = _configuration(environment)
        self._stderr: IO[bytes] = tempfile.TemporaryFile(  # noqa: SIM115 (closed by close())
            prefix="tftrt-warm-child-")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "converter.serving.warm_child"], env=environment,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True)

    def alive(self) -> bool:
        return self._process.poll() is None

    def ask(self, module: str, request_dir: pathlib.Path) -> Any:
        assert self._process.stdin is not None and self._process.stdout is not None
        start = self._stderr.tell()
        with contextlib.suppress(OSError):  # it died: reading finds its end and says why
            self._process.stdin.write(f"{module} {request_dir}\n")
            self._process.stdin.flush()
        for line in self._process.stdout:
            if line.startswith(_ANSWER):
                reply = json.loads(line[len(_ANSWER):])
                if "failed" in reply:
                    raise ChildFailed(reply["failed"])
                return reply["answer"]
        self._process.wait()
        self._stderr.seek(start)
        told = self._stderr.read().decode(errors="replace").strip().splitlines()[-15:]
        raise ChildFailed("\n".join(told) or f"it exited with {self._process.returncode}")

    def close(self) -> None:
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):  # it died already
                self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()


class _Keeper:
    """The process's one warm child: started on demand, closed when idle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._idle: threading.Timer | None = None

    def ask(self, module: str, request_dir: pathlib.Path,
            settings: Mapping[str, str] | None) -> Any:
        with self._lock:
            child = self._ready(child_environment(settings))
            try:
                return child.ask(module, request_dir)
            except ChildFailed:
                self._retire()
                raise
            finally:
                self._close_when_idle()

    def warm(self, settings: Mapping[str, str] | None) -> None:
        with self._lock:
            self._ready(child_environment(settings))
            self._close_when_idle()

    def close(self) -> None:
        with self._lock:
            self._retire()

    def _ready(self, environment: dict[str, str]) -> _Child:
        if self._idle is not None:
            self._idle.cancel()
        if self._child is not None and (
                not self._child.alive()
                or self._child.configuration != _configuration(environment)):
            self._retire()
        if self._child is None:
            self._child = _Child(environment)
        return self._child

    def _retire(self) -> None:
        if self._child is not None:
            self._child.close()
            self._child = None

    def _close_when_idle(self) -> None:
        self._idle = threading.Timer(IDLE_SECONDS, self.close)
        self._idle.daemon = True
        self._idle.start()


_KEEPER = _Keeper()
atexit.register(_KEEPER.close)


def ask(module: str, request_dir: pathlib.Path,
        settings: Mapping[str, str] | None = None) -> Any:
    """`module.answer(request_dir)`, run in the warm child for the environment
    variables `settings` on top of ours; ChildFailed with its error if it fails."""
    return _KEEPER.ask(module, request_dir, settings)


def warm(settings: Mapping[str, str] | None = None) -> None:
    """Start the warm child now, so its imports overlap the caller's work."""
    _KEEPER.warm(settings)


def _serve() -> None:
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    for line in sys.stdin:
        module, request_dir = line.rstrip("\n").split(" ", 1)
        try:
            reply = {"answer": importlib.import_module(module).answer(pathlib.Path(request_dir))}
        except Exception:  # reported to the parent, which raises it and closes this child
            reply = {"failed": "".join(traceback.format_exc().splitlines(True)[-15:])}
        print(_ANSWER + json.dumps(reply), flush=True)
    os._exit(0)  # stdin closed: the parent is done with us (or gone)


if __name__ == "__main__":
    _serve()
