"""One observer made of several: each call goes to every one of them, in order.

Jobs, the recorder and the rollbacks report through observer protocols (logs, metrics,
plain counters); :func:`fan_out` lets several listen where the code takes one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

_O = TypeVar("_O")


def fan_out(observers: Sequence[_O]) -> _O:
    """An observer of the same protocol that passes every call to each of ``observers``
    in order (the protocol's methods return None, so there is nothing to combine)."""
    return cast(_O, _FanOut(tuple(observers)))


class _FanOut:
    def __init__(self, observers: tuple[object, ...]) -> None:
        self._observers = observers

    def __getattr__(self, method: str) -> Callable[..., None]:
        # Look the method up on every observer now, so a name none of them has fails here.
        calls = [getattr(observer, method) for observer in self._observers]

        def call_each(*args: Any, **kwargs: Any) -> None:
            for call in calls:
                call(*args, **kwargs)

        setattr(self, method, call_each)  # later calls (the recorder's, per request) skip this
        return call_each
