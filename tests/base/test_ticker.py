"""The one helper that repeats work on a thread: the mirror governor, lease renewals and
the fleet shape contributor tick through it."""

from __future__ import annotations

import threading
import time

from sidecar.base.ticker import Ticker
from tests.support.waiting import wait_until


def test_it_ticks_every_interval_on_its_own_named_thread_until_stopped() -> None:
    ticks: list[tuple[float, str]] = []
    ticker = Ticker("test-ticker", 0.05, lambda: ticks.append(
        (time.monotonic(), threading.current_thread().name)))
    started = time.monotonic()
    ticker.start()
    wait_until(lambda: len(ticks) >= 3, 10, "three ticks")
    ticker.stop()
    stopped = len(ticks)
    assert ticks[0][0] - started >= 0.05, "the first tick waits one interval"
    assert {name for _, name in ticks} == {"test-ticker"}
    time.sleep(0.2)  # four intervals: long enough for a tick that should not come
    assert len(ticks) == stopped


def test_a_tick_that_stops_its_ticker_is_the_last() -> None:
    ticks: list[int] = []
    ticker: Ticker

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 2:
            ticker.stop()  # from its own thread: returns at once

    ticker = Ticker("ends", 0.02, tick)
    ticker.start()
    wait_until(lambda: len(ticks) >= 2, 10, "two ticks")
    time.sleep(0.2)  # ten intervals: it would have ticked again had it not stopped
    assert len(ticks) == 2


def test_stop_waits_for_the_tick_under_way() -> None:
    inside, release, done = threading.Event(), threading.Event(), threading.Event()

    def tick() -> None:
        inside.set()
        release.wait(10)
        done.set()

    ticker = Ticker("slow", 0.01, tick)
    ticker.start()
    assert inside.wait(10)
    threading.Timer(0.1, release.set).start()
    ticker.stop()
    assert done.is_set(), "stop returned before the tick under way ended"


def test_stopping_a_ticker_never_started_returns_at_once() -> None:
    Ticker("idle", 60, lambda: None).stop()
