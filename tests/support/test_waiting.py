"""The tests' one wait goes on as soon as its condition holds and, when it never does,
fails after its timeout naming what it waited for and what it saw last."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.support.waiting import wait_until


def test_the_wait_returns_the_first_true_value_as_soon_as_it_comes() -> None:
    looks = itertools.count()
    started = time.monotonic()
    assert wait_until(lambda: next(looks) >= 3 and "ready", 10, "three looks",
                      interval=0.01) == "ready"
    assert time.monotonic() - started < 1, "it went on at once, not at the timeout"


def test_done_tests_the_observed_value_which_is_returned() -> None:
    looks = itertools.count()
    assert wait_until(lambda: next(looks), 10, "the count at 2", done=lambda n: n == 2,
                      interval=0.01) == 2
    assert wait_until(lambda: 0, 1, "a zero", done=lambda n: n == 0) == 0


def test_a_timeout_names_what_was_awaited_and_the_last_value_seen() -> None:
    states = iter([{1: "LOADING"}, {1: "LOADING"}, {1: "END"}])
    last: dict[int, str] = {}

    def observe() -> dict[int, str]:
        last.update(next(states, last))
        return dict(last)

    started = time.monotonic()
    with pytest.raises(AssertionError) as failed:
        wait_until(observe, 0.2, "version 1 AVAILABLE", done=lambda s: s.get(1) == "AVAILABLE",
                   interval=0.01)
    assert time.monotonic() - started >= 0.2
    assert str(failed.value) == "waited 0.2 s for version 1 AVAILABLE; last saw {1: 'END'}"
