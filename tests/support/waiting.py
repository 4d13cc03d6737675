"""Test-only: the one way the tests wait for something to happen.

Every test that waits on a process, a thread, a file or a server polls with
:func:`wait_until` instead of sleeping a fixed time: it goes on as soon as the awaited thing
holds, and on a slow machine it fails only after the call's timeout, naming what it waited
for and what it saw last.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

INTERVAL_SECONDS = 0.05
"""How long a wait sleeps between two looks."""

HELD_SECONDS = 900.0
"""How long a helper process waits for its test to let it go on: as long as a test may run
(pytest's ``timeout`` in pyproject.toml), so one its test abandoned ends too."""


@overload
def wait_until(observe: Callable[[], T | None], timeout: float, what: str, *,
               interval: float = INTERVAL_SECONDS) -> T: ...


@overload
def wait_until(observe: Callable[[], T], timeout: float, what: str, *,
               done: Callable[[T], object], interval: float = INTERVAL_SECONDS) -> T: ...


def wait_until(observe: Callable[[], Any], timeout: float, what: str, *,
               done: Callable[[Any], object] = bool,
               interval: float = INTERVAL_SECONDS) -> Any:
    """Call ``observe`` until ``done`` holds for what it returns (by default: until it
    returns something true) and return that value; after ``timeout`` seconds fail the test
    naming ``what`` and the last value seen.

    ``interval`` is the pause between looks: longer for one that is costly (an RPC, a
    scrape). Return a state from ``observe`` and test it in ``done`` when the state says
    why a wait failed (the versions a server has, not just False)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = observe()
        if done(seen):
            return seen
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}; last saw {seen!r}")
        time.sleep(interval)
