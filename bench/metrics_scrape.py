"""Benchmark: what one /metrics scrape costs on a sidecar with a long history, and whether a
burst of concurrent scrapes is all answered, side by side with the engine cache walked on
every scrape (as before it was re-measured at most once a minute).

The stand is the real metrics wiring on temporary directories (journal, serving base,
shape store, engine cache), filled to the sizes given. Prints the median time of a
single scrape over real HTTP and the wall time of ``--burst`` concurrent scrapes, for each
way.

    python bench/metrics_scrape.py [--jobs 300] [--shape-sets 10000] [--cache-files 20000]
        [--burst 200]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import statistics
import tempfile
import threading
import time
import urllib.request

from prometheus_client import CollectorRegistry

from sidecar.config import Address


def _scrape_seconds(port: int) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        response.read()
    return time.perf_counter() - started


def _burst_seconds(port: int, scrapers: int) -> tuple[float, int]:
    answered: list[float] = []
    start = threading.Barrier(scrapers)

    def one() -> None:
        start.wait()
        answered.append(_scrape_seconds(port))

    threads = [threading.Thread(target=one) for _ in range(scrapers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, len(answered)


def main() -> None:
    """Fill a stand, then measure both ways."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--shape-sets", type=int, default=10_000)
    parser.add_argument("--cache-files", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()

    from sidecar.metrics import MetricsServer
    from sidecar.metrics.collectors import (
        ENGINE_CACHE_MAX_AGE_SECONDS,
        CoverageCollector,
        EngineCacheCollector,
        PublishedEnginesCollector,
        VersionStateCollector,
    )
    from sidecar.shapes import ShapeObservation, ShapeSet, TensorSpec
    from tests.metrics.stand import open_metrics_stand

    with tempfile.TemporaryDirectory() as root:
        stand = open_metrics_stand(Path(root))
        for number in range(1, args.jobs + 1):
            stand.journal.discover(f"model-{number % 10}", number * 1000)
        now = time.time()
        per_signature = max(1, args.shape_sets // 20)
        stand.shapes.record([
            ShapeObservation(f"model-{m}", f"signature-{s}", ShapeSet.of(
                {"x": TensorSpec("DT_FLOAT", (b, 224, 224, 3))}), now)
            for m in range(10) for s in range(2) for b in range(1, per_signature + 1)])
        cache = stand.engine_cache / "tf-2.21.0" / "cpu-bench"
        cache.mkdir(parents=True)
        for index in range(args.cache_files):
            (cache / f"entry-{index}").write_bytes(b"x")
        print(f"{args.jobs} jobs, {args.shape_sets} shape sets, {args.cache_files} cache files")
        for label, max_age in (("cache walked every scrape", 0.0),
                               (f"cache walked every {ENGINE_CACHE_MAX_AGE_SECONDS:g} s",
                                ENGINE_CACHE_MAX_AGE_SECONDS)):
            registry = CollectorRegistry()  # the scrape-time gauges, as SidecarMetrics has them
            for collector in (VersionStateCollector(stand.journal),
                              PublishedEnginesCollector(stand.published),
                              CoverageCollector(stand.shapes, stand.published),
                              EngineCacheCollector(stand.engine_cache, max_age_seconds=max_age)):
                registry.register(collector)
            server = MetricsServer(Address("127.0.0.1", 0), registry)
            server.start()
            try:
                single = statistics.median(_scrape_seconds(server.port) for _ in range(9))
                wall, answered = _burst_seconds(server.port, args.burst)
            finally:
                server.stop()
            print(f"{label:32} one scrape {single * 1000:6.1f} ms   {args.burst} at once: "
                  f"{answered} answered in {wall:.2f} s")
        stand.close()


if __name__ == "__main__":
    main()
