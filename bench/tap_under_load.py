"""Benchmark: tap latency while the sidecar converts a model, the tap on a thread of the
converting process vs in a process of its own, side by side in one run.

Starts the TF Serving stand-in (test-only server) with a small model, a "sidecar" process
that converts the demo model again and again on a thread (the real converter: convert and
build, TensorFlow and Python, as a conversion job does) and serves a tap on another thread
(the way `tftrt-sidecar run` ran it before), and a tap in its own process beside it (the
way `run` starts it now: `TapProcess`, its metrics shipped to this process). Both taps
record into the same shape store. Rounds alternate direct / thread tap / process tap at 1
and 8 clients while the conversions run, and print added p50/p99 (vs direct) and
throughput ratio. `--load convert-mobilenet` converts a larger model; `--load python` runs
a pure-Python loop instead (the GIL-bound worst case).

    python bench/tap_under_load.py [--requests 1000] [--rounds 3] [--load convert]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import threading
import time

from tap_latency import REPO, RunResult, _free_port, _percentile, _round, _spawn

CONCURRENCY = (1, 8)
_LOADS = {"convert": "conversions of the demo model (convert, build, save) in a loop",
          "convert-mobilenet": "conversions of MobileNetV2 (convert, build, save) in a loop",
          "python": "a pure-Python loop (GIL-bound, the worst case)"}


def _convert_forever(model: Path, workdir: Path, done: list[int]) -> None:
    """Convert and build `model` in a loop, as a conversion job does, counting conversions."""
    from converter.converter import Converter
    from converter.params import ConversionParams
    from converter.synthetic import batch_input_fn

    while True:
        converter = Converter(model, conversion_params=ConversionParams(
            maximum_cached_engines=2, allow_build_at_runtime=False))
        converter.convert()
        converter.build(batch_input_fn(converter.input_specs, (1, 8)))
        converter.save(workdir / f"converted-{len(done)}")
        done.append(1)


def _spin_forever(workdir: Path, done: list[int]) -> None:
    """Pure Python work that never releases the GIL on its own: the worst case for a tap
    thread beside it (conversions are partly this, partly TensorFlow's native code)."""
    while True:
        sum(i * i for i in range(2_000_000))
        done.append(1)


def _serve_loaded_sidecar(listen: str, upstream: str, state_dir: Path, model: Path,
                          load: str) -> None:
    """The converting process with the tap on a thread, printing conversions done on stdin."""
    from sidecar.shapes import ShapeStore, ShapeStoreSettings
    from sidecar.tap.server import serve_tap
    from sidecar.tap.settings import TapSettings

    store = ShapeStore(state_dir, ShapeStoreSettings(), time.time)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="tap", daemon=True).start()
    tap = asyncio.run_coroutine_threadsafe(  # held: a collected server stops serving
        serve_tap(TapSettings(listen=listen, upstream=upstream), store), loop).result()
    done: list[int] = []
    with tempfile.TemporaryDirectory() as workdir:
        if load.startswith("convert"):
            threading.Thread(target=_convert_forever, args=(model, Path(workdir), done),
                             daemon=True).start()
        else:
            threading.Thread(target=_spin_forever, args=(Path(workdir), done),
                             daemon=True).start()
        print("sidecar ready", flush=True)
        for _ in sys.stdin:  # one line asked, one line answered: conversions so far
            print(len(done), flush=True)
    del tap


def _bench(requests: int, rounds: int, load: str) -> None:
    from prometheus_client import CollectorRegistry

    from converter.demo import build_demo_model
    from sidecar.metrics import TapMetrics
    from sidecar.tap.process import TapProcess
    from sidecar.tap.settings import TapSettings
    from tests.support.models import keras_application
    from tests.support.standin_models import predict_request, save_affine_model

    with tempfile.TemporaryDirectory() as workdir:
        base, state = Path(workdir) / "m", Path(workdir) / "state"
        save_affine_model(base / "1")
        if load == "convert-mobilenet":
            model = keras_application(Path(workdir) / "mobilenet", "MobileNetV2")
        else:
            model = build_demo_model(Path(workdir) / "demo")
        serving_port, thread_port, process_port = _free_port(), _free_port(), _free_port()
        upstream = f"127.0.0.1:{serving_port}"
        standin = _spawn([str(REPO / "tests/support/tfserving_standin.py"),
                          f"--port={serving_port}", "--model_name=m",
                          f"--model_base_path={base}"], "Running gRPC ModelServer")
        process_tap = TapProcess(TapSettings(listen=f"127.0.0.1:{process_port}",
                                             upstream=upstream), state,
                                 observer=TapMetrics(CollectorRegistry(), None))
        process_tap.start()
        sidecar = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-sidecar",
             f"--listen=127.0.0.1:{thread_port}", f"--upstream={upstream}",
             f"--state-dir={state}", f"--model={model}", f"--load={load}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})
        assert sidecar.stdin is not None and sidecar.stdout is not None
        assert sidecar.stdout.readline().startswith("sidecar ready")

        def conversions() -> int:
            assert sidecar.stdin is not None and sidecar.stdout is not None
            sidecar.stdin.write("?\n")
            sidecar.stdin.flush()
            return int(sidecar.stdout.readline())

        try:
            time.sleep(5)  # let the first conversion get going
            request = predict_request("m", batch=1).SerializeToString()
            print(f"Predict, affine model, {requests} requests per round, {rounds} rounds "
                  f"each way, {os.cpu_count()} CPUs, while the sidecar process runs "
                  f"{_LOADS[load]} on a thread")
            print(f"{'clients':>7} {'way':>14} {'p50':>9} {'added':>9} {'p99':>9} {'added':>9} "
                  f"{'throughput':>10}")
            ways = {"direct": upstream, "thread tap": f"127.0.0.1:{thread_port}",
                    "process tap": f"127.0.0.1:{process_port}"}
            before = conversions()
            for clients in CONCURRENCY:
                runs: dict[str, list[RunResult]] = {name: [] for name in ways}
                for _ in range(rounds):
                    for name, address in ways.items():
                        runs[name].append(asyncio.run(_round(address, request, clients,
                                                             requests)))
                _print_level(clients, runs)
            print(f"load loops finished meanwhile: {conversions() - before}")
        finally:
            process_tap.stop()
            for process in (sidecar, standin):
                process.terminate()
                process.wait(30)


def _print_level(clients: int, runs: dict[str, list[RunResult]]) -> None:
    direct = [value for run in runs["direct"] for value in run.latencies]
    d50, d99 = _percentile(direct, 0.5), _percentile(direct, 0.99)
    direct_throughput = statistics.mean(run.throughput for run in runs["direct"])
    ms = 1000.0
    for name, way_runs in runs.items():
        latencies = [value for run in way_runs for value in run.latencies]
        p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
        ratio = statistics.mean(run.throughput for run in way_runs) / direct_throughput
        print(f"{clients:>7} {name:>14} {p50 * ms:>7.3f}ms {(p50 - d50) * ms:>+7.3f}ms "
              f"{p99 * ms:>7.3f}ms {(p99 - d99) * ms:>+7.3f}ms {ratio:>9.2f}x")


def main() -> int:
    """Run the benchmark (or, with --serve-sidecar, be the converting process it starts)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per way and level")
    parser.add_argument("--load", choices=sorted(_LOADS), default="convert",
                        help="what the sidecar process does meanwhile")
    parser.add_argument("--serve-sidecar", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--listen", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sidecar:
        _serve_loaded_sidecar(args.listen, args.upstream, args.state_dir, args.model,
                              args.load)
        return 0
    _bench(args.requests, args.rounds, args.load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
