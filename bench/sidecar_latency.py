"""Benchmark: what the sidecar costs, and what its warmup file and engines buy.

1. Landing-to-published time of one version through the sidecar (scan, vet in a
   TF1 Session, convert, build, save with the Session-path engine export, verify,
   warmup file, engines, publish, model config) against the conversion alone
   (``Converter`` convert/build/save on the same model and shapes): the overhead ratio.
2. For the published version, loaded in a fresh process through the TF1 Session
   loader the way TF Serving loads it: the time from the start of loading until a
   request is answered at steady-state speed, with the warmup file replayed and the
   installed engines in XLA's persistent cache, against warmup only, and against
   neither (the same version without them).

Run: ``python bench/sidecar_latency.py [--rounds 3]``. Prints medians side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

REQUESTS = 60
"""Requests per load probe; the steady-state latency is the median of the last half."""

STEADY_FACTOR = 1.5
"""A request is at steady-state speed when it takes at most this times the steady median."""


def conversion_alone(model: Path, output: Path) -> float:
    """Seconds for convert + build (policy's default batch sizes) + save, as a user would run it."""
    from converter import ConversionParams, Converter, batch_input_fn
    from sidecar.config import ModelPolicy
    from sidecar.jobs import conversion_params

    policy = ModelPolicy()
    params: ConversionParams = conversion_params(policy)
    start = time.perf_counter()
    converter = Converter(model, conversion_params=params)
    converter.convert()
    converter.build(batch_input_fn(converter.input_specs, policy.default_batch_sizes))
    converter.save(output)
    return time.perf_counter() - start


def through_sidecar(model: Path, root: Path, version: int) -> tuple[float, dict[str, float]]:
    """Seconds from incoming ``version`` landing to ``run --once`` returning it published
    (under its served number, ``numbering.served_version(version)``)."""
    from sidecar.config import load_settings
    from sidecar.service.loop import SidecarService
    from sidecar.service.wiring import build_parts
    from sidecar.state import JobState

    settings = load_settings({
        "incoming": str(root / "incoming"), "serving": str(root / "serving"),
        "state": str(root / "state"), "engine_cache": str(root / "engine-cache"),
        "model_config_file": str(root / "models.config"), "settle_seconds": 0,
        "rescan_interval_seconds": 0.05, "once": True,
    }, environ={})
    (root / "incoming" / "bench").mkdir(parents=True, exist_ok=True)
    landing = root / "incoming" / "bench" / f".landing-{version}"
    shutil.copytree(model, landing)
    with SidecarService(settings, build_parts(settings)) as service:
        service.start()
        start = time.perf_counter()
        os.rename(landing, root / "incoming" / "bench" / str(version))
        summary = service.run()
        seconds = time.perf_counter() - start
    result = summary.results[-1]
    if result.state is not JobState.PUBLISHED:
        raise SystemExit(f"the sidecar did not publish the version: {result.describe()}")
    stages = {state.value: s for state, s in result.stage_seconds.items()}
    return seconds, stages


def probe(version_dir: Path, use_warmup: bool) -> dict[str, Any]:
    """In this fresh process: load like TF Serving, maybe replay warmup, then time requests."""
    import tensorflow as tf

    from converter import ServingSession
    from sidecar.tfserving.warmup import read_warmup_file

    start = time.perf_counter()
    served = ServingSession.load(version_dir)
    signature = served.signature_def("serving_default")
    loaded = time.perf_counter()
    if use_warmup:
        served.replay_predict_requests(log.predict_log.request
                                       for log in read_warmup_file(version_dir))
    available = time.perf_counter()
    rng = np.random.default_rng(0)
    feed = {
        name: rng.standard_normal(
            [8 if i == 0 else max(d.size, 1) for i, d in enumerate(info.tensor_shape.dim)]
        ).astype(tf.as_dtype(info.dtype).as_numpy_dtype)
        for name, info in signature.inputs.items()
    }
    call = served.caller("serving_default", feed)
    latencies = []
    for _ in range(REQUESTS):
        began = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - began)
    steady = statistics.median(latencies[REQUESTS // 2:])
    until = available - start
    for latency in latencies:
        until += latency
        if latency <= STEADY_FACTOR * steady:
            break
    return {
        "load_s": loaded - start, "warmup_s": available - loaded, "first_ms": latencies[0] * 1e3,
        "steady_ms": steady * 1e3, "until_steady_s": until,
    }


def run_probe(version_dir: Path, use_warmup: bool, cache_dir: Path | None) -> dict[str, Any]:
    """Run :func:`probe` in a new Python process (nothing compiled yet, like a new server)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_XLA_FLAGS", None)
    if cache_dir is not None:
        env["TF_XLA_FLAGS"] = (f"--tf_xla_persistent_cache_directory={cache_dir} "
                               "--tf_xla_persistent_cache_read_only=true")
    done = subprocess.run(
        [sys.executable, __file__, "--probe", str(version_dir)]
        + (["--warmup"] if use_warmup else []),
        env=env, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"probe failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def median_of(rows: list[dict[str, Any]], key: str) -> float:
    """The median of one field over rounds."""
    return float(statistics.median(row[key] for row in rows))


def main() -> int:
    """Run both comparisons and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe is not None:
        print(json.dumps(probe(args.probe, args.warmup)))
        return 0

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from converter import build_demo_model
    from sidecar.tfserving import numbering

    work = Path(tempfile.mkdtemp(prefix="sidecar-bench-"))
    model = build_demo_model(work / "model")
    print(f"model: converter.demo.build_demo_model's; {args.rounds} round(s), "
          f"medians; work dir {work}")

    alone, sidecar, stages = [], [], []
    for index in range(args.rounds):
        alone.append(conversion_alone(model, work / f"converted-{index}"))
        seconds, stage = through_sidecar(model, work / "sidecar", index + 1)
        sidecar.append(seconds)
        stages.append(stage)
    a, s = statistics.median(alone), statistics.median(sidecar)
    print("\n1. landing to published vs conversion alone")
    print(f"   conversion alone (convert+build+save): {a:6.2f} s")
    print(f"   sidecar, landing to published:          {s:6.2f} s   overhead ratio {s / a:.2f}x")
    for name in stages[0]:
        print(f"     {name:<11} {statistics.median(row[name] for row in stages):6.2f} s")

    # The last round landed incoming version `rounds`; it is served under its mapped number.
    served = numbering.served_version(args.rounds)
    published = work / "sidecar" / "serving" / "bench" / str(served)
    engines = next((work / "sidecar" / "engine-cache").glob("tf-*/*"), None)
    bare = work / "bare"
    shutil.copytree(published, bare)
    (bare / "assets.extra" / "tf_serving_warmup_requests").unlink()
    variants = {
        "warmup file + installed engines": (published, True, engines),
        "warmup file only": (published, True, None),
        "neither (same version without them)": (bare, False, None),
    }
    print("\n2. new version loaded through the TF1 Session path (as TF Serving), batch 8")
    print(f"   engines installed in: {engines}")
    print(f"   {'variant':<38}{'load':>8}{'warmup':>9}{'1st req':>10}{'steady':>9}"
          f"{'to steady':>11}")
    results = {}
    for label, (directory, warm, cache) in variants.items():
        rows = [run_probe(directory, warm, cache) for _ in range(args.rounds)]
        results[label] = rows
        print(f"   {label:<38}{median_of(rows, 'load_s'):7.2f}s{median_of(rows, 'warmup_s'):8.2f}s"
              f"{median_of(rows, 'first_ms'):8.1f}ms{median_of(rows, 'steady_ms'):7.2f}ms"
              f"{median_of(rows, 'until_steady_s'):10.2f}s")
    with_all = median_of(results["warmup file + installed engines"], "first_ms")
    without = median_of(results["neither (same version without them)"], "first_ms")
    print(f"   first request: {without:.1f} ms without vs {with_all:.1f} ms with "
          f"({without / with_all:.1f}x)")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
