"""Benchmark: what the tap adds to a Predict call, side by side in one run.

Starts the TF Serving stand-in (test-only server) with a small model and the tap (with a
real shape store) in their own processes on 127.0.0.1, then sends the same bounded
number of Predict requests directly and through the tap with 1, 8 and 32 concurrent
clients, alternating direct and tapped rounds. Prints added p50/p99 latency in ms and
the throughput ratio (tap / direct).

    python bench/tap_latency.py [--requests 2000] [--rounds 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 8, 32)
PREDICT = "/tensorflow.serving.PredictionService/Predict"


@dataclass(frozen=True)
class RunResult:
    """Latencies (seconds) of one round and its wall time."""

    latencies: list[float]
    wall_seconds: float

    @property
    def throughput(self) -> float:
        """Requests per second."""
        return len(self.latencies) / self.wall_seconds


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _round(address: str, request: bytes, clients: int, total: int) -> RunResult:
    from grpc import aio

    async with aio.insecure_channel(address) as channel:
        call = channel.unary_unary(PREDICT)
        for _ in range(20):  # connect and warm the path
            await call(request, timeout=10)
        latencies: list[float] = []
        remaining = [total]

        async def client() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                started = time.perf_counter()
                await call(request, timeout=10)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return RunResult(latencies, time.perf_counter() - started)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _spawn(args: list[str], ready_prefix: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(ready_prefix):
        process.kill()
        raise RuntimeError(f"{args[0]} did not start: {line!r}")
    return process


async def _serve_tap(listen: str, upstream: str, state_dir: Path) -> None:
    from sidecar.shapes import ShapeStore, ShapeStoreSettings
    from sidecar.tap import TapSettings, serve_tap

    with ShapeStore(state_dir, ShapeStoreSettings(), time.time) as store:
        server = await serve_tap(TapSettings(listen=listen, upstream=upstream), store)
        print(f"tap ready on {server.port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop(1)


def _bench(requests: int, rounds: int) -> None:
    from tests.support.standin_models import predict_request, save_affine_model

    with tempfile.TemporaryDirectory() as workdir:
        base = Path(workdir) / "m"
        save_affine_model(base / "1")
        serving_port, tap_port = _free_port(), _free_port()
        standin = _spawn(
            [
                str(REPO / "tests/support/tfserving_standin.py"),
                f"--port={serving_port}",
                "--model_name=m",
                f"--model_base_path={base}",
            ],
            "Running gRPC ModelServer",
        )
        tap = _spawn(
            [
                str(Path(__file__).resolve()),
                "--serve-tap",
                f"--listen=127.0.0.1:{tap_port}",
                f"--upstream=127.0.0.1:{serving_port}",
                f"--state-dir={Path(workdir) / 'state'}",
            ],
            "tap ready",
        )
        try:
            request = predict_request("m", batch=1).SerializeToString()
            print(
                f"Predict, affine model [1, 4] float32, {requests} requests per round, "
                f"{rounds} rounds each way, 127.0.0.1, {os.cpu_count()} CPUs"
            )
            print(
                f"{'clients':>7} {'direct p50':>11} {'tap p50':>9} {'added p50':>10} "
                f"{'direct p99':>11} {'tap p99':>9} {'added p99':>10} {'throughput':>11}"
            )
            for clients in CONCURRENCY:
                direct: list[RunResult] = []
                tapped: list[RunResult] = []
                for _ in range(rounds):
                    direct.append(
                        asyncio.run(
                            _round(f"127.0.0.1:{serving_port}", request, clients, requests)
                        )
                    )
                    tapped.append(
                        asyncio.run(_round(f"127.0.0.1:{tap_port}", request, clients, requests))
                    )
                _print_row(clients, direct, tapped)
        finally:
            for process in (tap, standin):
                process.terminate()
                process.wait(20)


def _print_row(clients: int, direct: list[RunResult], tapped: list[RunResult]) -> None:
    direct_latencies = [value for run in direct for value in run.latencies]
    tapped_latencies = [value for run in tapped for value in run.latencies]
    ms = 1000.0
    d50, t50 = _percentile(direct_latencies, 0.5) * ms, _percentile(tapped_latencies, 0.5) * ms
    d99, t99 = _percentile(direct_latencies, 0.99) * ms, _percentile(tapped_latencies, 0.99) * ms
    ratio = statistics.mean(run.throughput for run in tapped) / statistics.mean(
        run.throughput for run in direct
    )
    print(
        f"{clients:>7} {d50:>9.3f}ms {t50:>7.3f}ms {t50 - d50:>+8.3f}ms "
        f"{d99:>9.3f}ms {t99:>7.3f}ms {t99 - d99:>+8.3f}ms {ratio:>10.2f}x"
    )


def main() -> int:
    """Run the benchmark (or, with --serve-tap, be the tap process it starts)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per way and level")
    parser.add_argument("--serve-tap", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--listen", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_tap:
        asyncio.run(_serve_tap(args.listen, args.upstream, args.state_dir))
        return 0
    _bench(args.requests, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
