"""Benchmark: what the proxy in front of TF Serving adds to a Predict call, side by side.

Starts the TF Serving stand-in (test-only server) with a model, then in their own
processes on 127.0.0.1: Envoy three times (the hop alone, mirroring 10% and mirroring
100% of calls to the shape recorder, which records into a real shape store in a process
of its own), and for reference the floor (a bare `grpc.aio` forwarder: raw bytes in and
out, nothing else: the least a Python proxy could cost, which is why the proxy is Envoy).
It sends the same bounded number of Predict
requests directly and through each of them with 1, 8 and 32 concurrent clients,
alternating the ways round by round. Every round first warms its connection at its own
concurrency, so no way pays for the upstream growing its thread pool. Prints added
p50/p99 latency in ms, the throughput ratio (against direct), the CPU time the proxy
process spent per call, and the recorder's CPU time per mirrored call. The machine is
shared (client, proxy and upstream compete for its cores), so each level also prints
how much CPU other processes in view took while it ran: a busy machine skews the
numbers (load from outside this machine's process table does not show there).

    python bench/tap_latency.py [--requests 2000] [--rounds 2] [--model affine|demo|mobilenet]
        [--envoy-workers N]

``envoy-auto`` is the product's way: Envoy mirroring every call at first and the sidecar's
governor lowering the share to its default budgets (calls and bytes per second).
``--model demo`` serves the demo model (batch 1, 64x128 tokens) and ``--model mobilenet``
MobileNetV2 (weights=None, batch 1, 224x224x3: a 600 KB request) instead of the small
affine model, for throughput with real models.
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sidecar.envoy.process import EnvoyProcess

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 8, 32)
PREDICT = "/tensorflow.serving.PredictionService/Predict"
WARMUP_CALLS = 50
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


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

        async def send(count: int, latencies: list[float]) -> None:
            remaining = [count]

            async def client() -> None:
                while remaining[0] > 0:
                    remaining[0] -= 1
                    started = time.perf_counter()
                    await call(request, timeout=10)
                    latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(client() for _ in range(clients)))

        # Connect and warm the whole path at this concurrency (server threads, streams).
        await send(max(WARMUP_CALLS, 4 * clients), [])
        latencies: list[float] = []
        started = time.perf_counter()
        await send(total, latencies)
        return RunResult(latencies, time.perf_counter() - started)


def _cpu_ticks(pid: int) -> int:
    """User plus system CPU time of process `pid` (all its threads), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def _busy_ticks() -> int:
    """CPU time all processes on the machine spent, in clock ticks (idle and iowait out)."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:8]]
    return sum(values) - values[3] - values[4]


@dataclass
class Way:
    """One way of sending the requests: its address, the process that serves it (whose
    CPU time per call is reported), and its rounds."""

    name: str
    address: str
    pid: int
    runs: list[RunResult]
    mirrored: float = 0.0
    cpu_ticks: int = 0
    recorder_ticks: int = 0
    calls: int = 0

    def cpu_us_per_call(self) -> float:
        """CPU time its serving process spent per call, in microseconds."""
        return self.cpu_ticks / TICKS_PER_SECOND * 1e6 / max(1, self.calls)

    def recorder_us_per_mirrored_call(self) -> float | None:
        """CPU time the recorder spent per call mirrored to it, in microseconds."""
        if not self.mirrored:
            return None
        return self.recorder_ticks / TICKS_PER_SECOND * 1e6 / max(1.0, self.calls * self.mirrored)


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


async def _serve_recorder(listen: str, state_dir: Path) -> None:
    from sidecar.config import Address
    from sidecar.recorder.recorder_server import serve_recorder
    from sidecar.recorder.settings import RecorderSettings
    from sidecar.shapes import ShapeStore, ShapeStoreSettings

    with ShapeStore(state_dir, ShapeStoreSettings(), time.time) as store:
        server = await serve_recorder(
            RecorderSettings(listen=Address.parse(listen, "--listen")), store)
        print(f"recorder ready on {server.port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop(1)


def _start_envoy(workdir: Path, upstream_port: int, recorder_port: int, fraction: float,
                 workers: int | None) -> EnvoyProcess:
    from sidecar.envoy.binary import EnvoyBinary
    from sidecar.envoy.process import EnvoyProcess
    from sidecar.envoy.settings import Address, EnvoySettings

    settings = EnvoySettings(
        listen=Address("127.0.0.1", _free_port()), upstream=Address("127.0.0.1", upstream_port),
        recorder=Address("127.0.0.1", recorder_port), admin=Address("127.0.0.1", _free_port()),
        mirror_fraction=fraction, workers=workers)
    envoy = EnvoyProcess(settings, EnvoyBinary.locate(), workdir / f"envoy-{fraction}")
    envoy.start()
    return envoy


async def _serve_floor(listen: str, upstream: str) -> None:
    """The least a `grpc.aio` proxy can do: Predict bytes forwarded with the deadline."""
    import grpc
    from grpc import aio

    channel = aio.insecure_channel(upstream)
    forward_call = channel.unary_unary(PREDICT)

    async def forward(request: bytes, context: aio.ServicerContext) -> bytes:
        response: bytes = await forward_call(request, timeout=context.time_remaining())
        return response

    server = aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "tensorflow.serving.PredictionService",
                {"Predict": grpc.unary_unary_rpc_method_handler(forward)},
            ),
        )
    )
    port = server.add_insecure_port(listen)
    await server.start()
    print(f"floor ready on {port}", flush=True)
    await server.wait_for_termination()


def _model(name: str, version_dir: Path) -> tuple[bytes, str]:
    """Save the benchmark's model; its Predict request and a description."""
    from tests.support.standin_models import predict_request, save_affine_model

    if name == "affine":
        save_affine_model(version_dir)
        return predict_request("m", batch=1).SerializeToString(), "affine model [1, 4] float32"
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    if name == "demo":
        from converter import DEMO_SEQUENCE, build_demo_model

        build_demo_model(version_dir)
        shape: tuple[int, ...] = (1, *DEMO_SEQUENCE)
        description = "the demo model"
    else:
        model = tf.keras.applications.MobileNetV2(weights=None)
        model.export(str(version_dir), format="tf_saved_model", verbose=False)
        shape, description = (1, 224, 224, 3), "MobileNetV2"
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    (input_name,) = signature.structured_input_signature[1]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.inputs[input_name].CopyFrom(
        tf.make_tensor_proto(np.random.rand(*shape).astype(np.float32)))
    return request.SerializeToString(), f"{description} {list(shape)} float32"


def _bench(requests: int, rounds: int, model: str, envoy_workers: int | None) -> None:
    from sidecar.config import defaults
    from sidecar.envoy.governor import MirrorGovernor
    from sidecar.envoy.runtime import EnvoyAdmin

    with tempfile.TemporaryDirectory() as workdir:
        base = Path(workdir) / "m"
        request, description = _model(model, base / "1")
        serving_port = _free_port()
        standin = _spawn(
            [
                str(REPO / "tests/support/tfserving_standin.py"),
                f"--port={serving_port}",
                "--model_name=m",
                f"--model_base_path={base}",
            ],
            "Running gRPC ModelServer",
        )
        floor_port = _free_port()
        floor = _spawn(
            [
                str(Path(__file__).resolve()),
                "--serve-floor",
                f"--listen=127.0.0.1:{floor_port}",
                f"--upstream=127.0.0.1:{serving_port}",
            ],
            "floor ready",
        )
        recorder_port = _free_port()
        recorder = _spawn(
            [
                str(Path(__file__).resolve()),
                "--serve-recorder",
                f"--listen=127.0.0.1:{recorder_port}",
                f"--state-dir={Path(workdir) / 'recorder-state'}",
            ],
            "recorder ready",
        )
        envoys = {fraction: _start_envoy(Path(workdir), serving_port, recorder_port, fraction,
                                         envoy_workers)
                  for fraction in (0.0, 0.1, 1.0)}
        # The product's own way: all mirrored at first, the governor lowering the share
        # to the default budgets (calls and bytes per second).
        adaptive = _start_envoy(Path(workdir) / "auto", serving_port, recorder_port, 1.0,
                                envoy_workers)
        governor = MirrorGovernor(
            EnvoyAdmin(adaptive.settings.admin), 1.0, defaults.DEFAULT_MIRROR_BUDGET_PER_SECOND,
            defaults.DEFAULT_MIRROR_BUDGET_BYTES_PER_SECOND, interval=1.0)
        governor.start()
        try:
            print(
                f"Predict, {description}, {requests} requests per round, "
                f"{rounds} rounds each way, 127.0.0.1, {os.cpu_count()} CPUs; envoy-N% = Envoy "
                f"mirroring N% to the recorder ({envoy_workers or 'default'} workers); floor = "
                "bare grpc.aio forwarder"
            )
            print(
                f"{'clients':>7} {'way':>10} {'p50':>9} {'added':>9} {'p99':>9} {'added':>9} "
                f"{'throughput':>10} {'cpu/call':>9} {'recorder/mirrored call':>22}"
            )
            envoy_pids = [envoy.pid for envoy in (*envoys.values(), adaptive)
                          if envoy.pid is not None]
            own = [os.getpid(), standin.pid, floor.pid, recorder.pid, *envoy_pids]
            for clients in CONCURRENCY:
                ways = [
                    Way("direct", f"127.0.0.1:{serving_port}", standin.pid, []),
                    *(Way(f"envoy-{fraction:.0%}", str(envoy.settings.listen),
                          envoy.pid or 0, [], mirrored=fraction)
                      for fraction, envoy in envoys.items()),
                    Way("envoy-auto", str(adaptive.settings.listen), adaptive.pid or 0, [],
                        mirrored=1.0),
                    Way("floor", f"127.0.0.1:{floor_port}", floor.pid, []),
                ]
                busy_before, own_before = _busy_ticks(), sum(map(_cpu_ticks, own))
                wall_before = time.perf_counter()
                for _ in range(rounds):
                    for way in ways:
                        ticks, recorder_ticks = _cpu_ticks(way.pid), _cpu_ticks(recorder.pid)
                        way.runs.append(
                            asyncio.run(_round(way.address, request, clients, requests))
                        )
                        if way.name == "envoy-auto":
                            way.mirrored = governor.share  # the share it ended at
                        if way.mirrored:
                            time.sleep(0.3)  # let the recorder finish what was mirrored
                        way.cpu_ticks += _cpu_ticks(way.pid) - ticks
                        way.recorder_ticks += _cpu_ticks(recorder.pid) - recorder_ticks
                        way.calls += requests + max(WARMUP_CALLS, 4 * clients)
                foreign = (_busy_ticks() - busy_before) - (sum(map(_cpu_ticks, own)) - own_before)
                foreign_share = max(0, foreign) / TICKS_PER_SECOND / (
                    time.perf_counter() - wall_before
                )
                _print_level(clients, ways, foreign_share)
        finally:
            governor.stop()
            for envoy in (*envoys.values(), adaptive):
                envoy.stop()
            for process in (floor, recorder, standin):
                process.terminate()
                process.wait(20)


def _print_level(clients: int, ways: list[Way], foreign_cpus: float) -> None:
    direct = ways[0]
    direct_latencies = [value for run in direct.runs for value in run.latencies]
    d50, d99 = _percentile(direct_latencies, 0.5), _percentile(direct_latencies, 0.99)
    direct_throughput = statistics.mean(run.throughput for run in direct.runs)
    ms = 1000.0
    for way in ways:
        latencies = [value for run in way.runs for value in run.latencies]
        p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
        ratio = statistics.mean(run.throughput for run in way.runs) / direct_throughput
        recorder = way.recorder_us_per_mirrored_call()
        recorded = f"{recorder:>20.0f}us" if recorder is not None else ""
        print(
            f"{clients:>7} {way.name:>10} {p50 * ms:>7.3f}ms {(p50 - d50) * ms:>+7.3f}ms "
            f"{p99 * ms:>7.3f}ms {(p99 - d99) * ms:>+7.3f}ms {ratio:>9.2f}x "
            f"{way.cpu_us_per_call():>7.0f}us {recorded}"
        )
    note = "  (numbers skewed)" if foreign_cpus > 0.1 else ""
    print(f"{'':>7} other processes used {foreign_cpus:.2f} CPUs meanwhile{note}")


def main() -> int:
    """Run the benchmark (or be one of the processes it starts)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per way and level")
    parser.add_argument("--model", choices=("affine", "demo", "mobilenet"), default="affine")
    parser.add_argument("--envoy-workers", type=int, default=None,
                        help="Envoy's worker threads (default: one per CPU)")
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-recorder", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--listen", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        asyncio.run(_serve_floor(args.listen, args.upstream))
        return 0
    if args.serve_recorder:
        asyncio.run(_serve_recorder(args.listen, args.state_dir))
        return 0
    _bench(args.requests, args.rounds, args.model, args.envoy_workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
