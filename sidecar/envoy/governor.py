"""Sampling that adapts: all calls are recorded while traffic is light; as it grows, the
share Envoy mirrors is lowered through its runtime so that the recorder handles about
``budget_per_second`` calls and ``byte_budget_per_second`` request bytes a second (large
requests cost more to parse), whatever the traffic.

The recorder scales what it records by the share in force (each recorded call counts as
1 / share calls), so the shape store's frequencies stay those of the whole traffic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from sidecar.base.ticker import Ticker
from sidecar.envoy.bootstrap import MIRROR_DENOMINATOR
from sidecar.envoy.runtime import EnvoyAdmin

_LOG = logging.getLogger("sidecar.envoy")

INTERVAL_SECONDS: Final = 5.0
"""How often the traffic is measured and the share adjusted."""


def share_for(rate_per_second: float, budget_per_second: float, ceiling: float,
              bytes_per_second: float = 0.0, byte_budget_per_second: float = 0.0) -> float:
    """The share to mirror at ``rate_per_second`` client calls carrying ``bytes_per_second``:
    ``ceiling`` while both stay within their budgets (a budget of 0 is off), else the
    tighter budget's share, in Envoy's steps of 1% and never below one step."""
    share = ceiling
    for budget, rate in ((budget_per_second, rate_per_second),
                         (byte_budget_per_second, bytes_per_second)):
        if budget > 0 and rate * share > budget:
            share = budget / rate
    if share >= ceiling:
        return ceiling
    step = 1 / MIRROR_DENOMINATOR
    return max(step, int(share / step) * step)


class MirrorGovernor:
    """Measures the calls clients send through Envoy every ``interval`` seconds and sets
    the mirrored share (:func:`share_for`) when it changes. A background component."""

    def __init__(self, admin: EnvoyAdmin, ceiling: float, budget_per_second: float,
                 byte_budget_per_second: float = 0.0, interval: float = INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._admin = admin
        self._ceiling = ceiling
        self._budget = budget_per_second
        self._byte_budget = byte_budget_per_second
        self._clock = clock
        self._ticker = Ticker("mirror-governor", interval, self._tick)
        self._last: tuple[float, int, int] | None = None
        self.share = ceiling
        """The share set last."""

    def start(self) -> None:
        """Start measuring on a thread of its own."""
        self._ticker.start()

    def stop(self) -> None:
        """Stop measuring."""
        self._ticker.stop(10)

    def adjust(self) -> None:
        """Measure once and set the share if it changed (what each tick does)."""
        now, (calls, received) = self._clock(), self._admin.client_traffic()
        last, self._last = self._last, (now, calls, received)
        if last is None or now <= last[0]:
            return
        seconds = now - last[0]
        rate, byte_rate = max(0, calls - last[1]) / seconds, max(0, received - last[2]) / seconds
        share = share_for(rate, self._budget, self._ceiling, byte_rate, self._byte_budget)
        if share != self.share:
            self._admin.set_mirror_fraction(share)
            _LOG.info("%.0f calls/s (%.1f MB/s) through Envoy: recording %.0f%% of them "
                      "(budgets %g calls/s, %.1f MB/s)", rate, byte_rate / 1e6, share * 100,
                      self._budget, self._byte_budget / 1e6)
            self.share = share

    def _tick(self) -> None:
        try:
            self.adjust()
        except OSError as error:  # Envoy restarting: measure again next time
            _LOG.debug("cannot reach Envoy's admin API: %s", error)
            self._last = None
