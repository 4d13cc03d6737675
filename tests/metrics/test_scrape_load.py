"""/metrics under load: many Prometheus servers (or a burst of retries) scraping at once
must all be answered, promptly, over real HTTP connections; the costliest source (the
engine cache walk) is not redone for every scrape."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from sidecar.config import Address
from sidecar.metrics import MetricsServer
from sidecar.metrics.collectors import ENGINE_CACHE_MAX_AGE_SECONDS, EngineCacheCollector
from tests.metrics.stand import MetricsStand, scrape, value

SCRAPERS = 200
DEADLINE_SECONDS = 20.0


def _scrape(port: int, start: threading.Barrier, answers: list[tuple[int, float, bytes]],
            failures: list[str]) -> None:
    start.wait()
    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE_SECONDS)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        answers.append((response.status, time.monotonic() - began, response.read()))
    except OSError as error:
        failures.append(f"{type(error).__name__}: {error}")
    finally:
        connection.close()


def test_200_concurrent_scrapes_are_all_answered(metrics_stand: MetricsStand) -> None:
    stand = metrics_stand
    for number in range(1, 21):  # a journal with history, as a long-running sidecar has
        stand.journal.discover(f"model-{number % 4}", number * 1000)
    answers: list[tuple[int, float, bytes]] = []
    failures: list[str] = []
    start = threading.Barrier(SCRAPERS)
    threads = [threading.Thread(target=_scrape,
                                args=(stand.server.port, start, answers, failures))
               for _ in range(SCRAPERS)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_SECONDS + 10)
    elapsed = time.monotonic() - began
    assert not failures, f"{len(failures)} of {SCRAPERS} scrapes failed: {failures[:3]}"
    assert len(answers) == SCRAPERS
    assert {status for status, _, _ in answers} == {200}
    assert all(b"tftrt_sidecar_versions{" in body for _, _, body in answers)
    slowest = max(seconds for _, seconds, _ in answers)
    print(f"{SCRAPERS} concurrent scrapes: all answered in {elapsed:.2f} s, "
          f"slowest {slowest:.2f} s")
    assert slowest < 5.0, f"the slowest scrape took {slowest:.2f} s"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_engine_cache_is_walked_at_most_once_a_minute(tmp_path: Path) -> None:
    namespace = tmp_path / "tf-2.21.0" / "cpu-test"
    namespace.mkdir(parents=True)
    (namespace / "a").write_bytes(b"x" * 100)
    clock = _Clock()
    registry = CollectorRegistry()
    registry.register(EngineCacheCollector(tmp_path, clock=clock))
    server = MetricsServer(Address("127.0.0.1", 0), registry)
    server.start()
    try:
        labels = {"namespace": "tf-2.21.0/cpu-test"}

        def scraped() -> float:
            return value(scrape(server.port), "tftrt_sidecar_engine_cache_bytes", **labels)

        assert scraped() == 100
        (namespace / "b").write_bytes(b"x" * 50)  # an install between two scrapes
        clock.now += ENGINE_CACHE_MAX_AGE_SECONDS - 1
        assert scraped() == 100, "the cache was walked again within the minute"
        clock.now += 1
        assert scraped() == 150
    finally:
        server.stop()
