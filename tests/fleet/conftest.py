"""Fixtures of the fleet store tests: replica processes, version trees, stores."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.fleet import LeaseBook, SharedDirectoryStore
from tests.support.running_sidecar import REPO_ROOT

LEASE = 0.3
"""Seconds: the leases in these tests (short, so takeovers are quick)."""

LONG_LEASE = 5.0
"""Seconds: a lease that a busy machine does not let run out during a test."""


def write_version(path: Path, seed: int = 0, size: int = 4096) -> Path:
    """A published version's tree as a job leaves it (model, warmup, engines, report),
    with content that differs per ``seed``."""
    files = {
        "saved_model.pb": os.urandom(size) + bytes([seed]),
        "variables/variables.index": bytes([seed]) * 64,
        "variables/variables.data-00000-of-00001": os.urandom(size),
        "assets.extra/tf_serving_warmup_requests": b"warmup" + bytes([seed]),
        "assets.extra/tftrt/conversion.json": json.dumps({"seed": seed}).encode(),
        "assets.extra/tftrt/engines/tf-2.21.0/cpu-test/entry-1": os.urandom(512),
    }
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def open_store(root: Path, replica: str, lease: float = LEASE) -> SharedDirectoryStore:
    """This process's store as replica ``replica``."""
    return SharedDirectoryStore(root, LeaseBook(replica, lease))


class Worker:
    """One ``tests.fleet.fleet_worker`` process; read its JSON events with :meth:`expect`."""

    def __init__(
        self, store: Path, replica: str, source: Path, *, lease: float = LEASE,
        **options: Path | str | bool
    ) -> None:
        command = [sys.executable, "-m", "tests.fleet.fleet_worker", str(store), replica,
                   str(lease), str(source)]
        for name, value in options.items():
            flag = f"--{name.replace('_', '-')}"
            command += [flag] if value is True else [flag, str(value)]
        self.replica = replica
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                        text=True)
        self._selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        self.events: list[dict[str, Any]] = []

    def expect(self, *events: str, timeout: float = 20.0) -> dict[str, Any]:
        """The next event, which must be one of ``events``, within ``timeout`` seconds."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0 and self._selector.select(left), (
                f"{self.replica}: no {events} within {timeout} s (saw {self.events})")
            line = self.process.stdout.readline()
            assert line, f"{self.replica} exited ({self.process.wait()}) before {events}"
            event = json.loads(line)
            self.events.append(event)
            assert event["event"] in events, f"{self.replica}: {event}, expected {events}"
            return event

    def signal(self, number: signal.Signals) -> None:
        """Send ``number`` to the process."""
        self.process.send_signal(number)

    def finish(self) -> int:
        """Wait for the process to end; its exit code."""
        code = self.process.wait(timeout=20)
        self._selector.close()
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Workers a test starts; any left running are killed at the end."""
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGCONT)
            worker.process.kill()
        worker.finish()
