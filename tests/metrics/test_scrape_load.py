"""/metrics under load: many Prometheus servers (or a burst of retries) scraping at once
must all be answered, promptly, over real HTTP connections."""

from __future__ import annotations

import http.client
import threading
import time

from tests.metrics.stand import MetricsStand

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
