"""Fixtures of the metrics tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.metrics.stand import MetricsStand, open_metrics_stand
from tests.recorder.conftest import LoopThread


@pytest.fixture()
def metrics_stand(tmp_path: Path) -> Iterator[MetricsStand]:
    """Real parts with metrics served on a free port."""
    stand = open_metrics_stand(tmp_path)
    yield stand
    stand.close()


@pytest.fixture(scope="module")
def event_loop_thread() -> Iterator[LoopThread]:
    """An asyncio loop on a thread, for the tap."""
    runner = LoopThread()
    yield runner
    runner.close()
