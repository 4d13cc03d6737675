"""Sampling that adapts: all calls are recorded while traffic is light; as it grows, the
share Envoy mirrors is lowered through its runtime so that the recorder handles about
``budget_per_second`` calls a second, whatever the traffic.

The recorder scales what it records by the share in force (each recorded call counts as
1 / share calls), so the shape store's frequencies stay those of the whole traffic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from sidecar.envoy.bootstrap import MIRROR_DENOMINATOR
from sidecar.envoy.runtime import EnvoyAdmin

_LOG = logging.getLogger("sidecar.envoy")

INTERVAL_SECONDS: Final = 5.0
"""How often the traffic is measured and the share adjusted."""


def share_for(rate_per_second: float, budget_per_second: float, ceiling: float) -> float:
    """The share to mirror at ``rate_per_second`` client calls: ``ceiling`` while that stays
    within the budget (or the budget is 0, off), else the budget's share of the rate, in
    Envoy's steps of 1% and never below one step."""
    if budget_per_second <= 0 or rate_per_second * ceiling <= budget_per_second:
        return ceiling
    step = 1 / MIRROR_DENOMINATOR
    share = int(budget_per_second / rate_per_second / step) * step
    return min(ceiling, max(step, share))


class MirrorGovernor:
    """Measures the calls clients send through Envoy every ``interval`` seconds and sets
    the mirrored share (:func:`share_for`) when it changes. A background component."""

    def __init__(self, admin: EnvoyAdmin, ceiling: float, budget_per_second: float,
                 interval: float = INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._admin = admin
        self._ceiling = ceiling
        self._budget = budget_per_second
        self._interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[float, int] | None = None
        self.share = ceiling
        """The share set last."""

    def start(self) -> None:
        """Start measuring on a thread of its own."""
        self._thread = threading.Thread(target=self._run, name="mirror-governor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop measuring."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def adjust(self) -> None:
        """Measure once and set the share if it changed (what each tick does)."""
        now, total = self._clock(), self._admin.client_requests()
        last, self._last = self._last, (now, total)
        if last is None or now <= last[0]:
            return
        rate = max(0, total - last[1]) / (now - last[0])
        share = share_for(rate, self._budget, self._ceiling)
        if share != self.share:
            self._admin.set_mirror_fraction(share)
            _LOG.info("%.0f calls/s through Envoy: recording %.0f%% of them (budget %g/s)",
                      rate, share * 100, self._budget)
            self.share = share

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.adjust()
            except OSError as error:  # Envoy restarting: measure again next time
                _LOG.debug("cannot reach Envoy's admin API: %s", error)
                self._last = None
