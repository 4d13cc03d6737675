"""The operations started through the admin API: in memory, one per requested conversion.

Operations live as long as the process; the durable record of a conversion is
the version's job in the journal, which outlives them.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final

from sidecar.admin.backend import ConversionRequest
from sidecar.admin.validation import OPERATION_PREFIX

MAX_KEPT_DONE: Final = 1000
"""Finished operations kept for GetOperation/ListOperations; the oldest go first."""


@dataclass(frozen=True)
class OperationRecord:
    """One operation: what was asked, when, and the Future of its job."""

    name: str
    """``operations/<model>-<version>-<token>``."""
    request: ConversionRequest
    """The checked request."""
    created_at: float
    """When it was started (epoch seconds)."""
    future: Future[Any]
    """Completes when the job reached a final state."""

    @property
    def progress(self) -> str:
        """"queued", "running" or "done"."""
        if self.future.done():
            return "done"
        return "running" if self.future.running() else "queued"


class OperationRegistry:
    """Thread-safe registry of operations, newest last."""

    def __init__(self, token: Callable[[], str] = lambda: secrets.token_hex(4)) -> None:
        self._token = token
        self._lock = threading.Lock()
        self._records: dict[str, OperationRecord] = {}

    def add(self, request: ConversionRequest, future: Future[Any], now: float) -> OperationRecord:
        """Register a submitted conversion; return its record."""
        name = f"{OPERATION_PREFIX}{request.model}-{request.version}-{self._token()}"
        record = OperationRecord(name, request, now, future)
        with self._lock:
            self._records[name] = record
            self._forget_old_locked()
        return record

    def get(self, name: str) -> OperationRecord | None:
        """The record called ``name``, or None."""
        with self._lock:
            return self._records.get(name)

    def all(self) -> list[OperationRecord]:
        """Every record, newest first."""
        with self._lock:
            return list(reversed(self._records.values()))

    def unfinished_for(self, model: str, version: int) -> OperationRecord | None:
        """The queued or running operation of (model, version), if any."""
        with self._lock:
            for record in self._records.values():
                same = record.request.model == model and record.request.version == version
                if same and not record.future.done():
                    return record
        return None

    def _forget_old_locked(self) -> None:
        done = [name for name, r in self._records.items() if r.future.done()]
        for name in done[: max(0, len(done) - MAX_KEPT_DONE)]:
            del self._records[name]
