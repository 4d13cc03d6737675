"""A clock the test moves by hand, for code that takes its clock as an argument."""

from __future__ import annotations


class ManualClock:
    """A clock the test moves by hand (stands in for time.time / time.monotonic)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
