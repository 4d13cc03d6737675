"""Converter benchmark: ratios measured side by side in one run (issue 2).

    python bench/converter_bench.py [--models mlp mobilenet] [--workdir DIR]

For each model: (a) steady-state latency converted / original, both served
through the TF1 Session loader in one process, calls interleaved; (b) the first
request of a fresh serving process on a prebuilt shape, with the engines
installed / without them, and / steady state; (c) convert + build + save wall
time; (d) converted SavedModel size / original (the engine cache it carries reported
apart: it is an optional, device-specific cache); (e) peak RSS while converting /
while loading and running the original alone. Each fresh process is a
subprocess of this script (`worker` sub-command).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS: dict[str, tuple[int, ...]] = {"mlp": (8, 64, 128), "mobilenet": (1, 224, 224, 3)}
"""Each model and the input shape it is built for and measured at."""


def _worker(argv: list[str]) -> dict[str, Any]:
    """Runs in a fresh process; argv[0] says what to measure."""
    kind, model = argv[0], argv[1]
    if kind in ("first", "steady"):
        os.environ["TF_XLA_FLAGS"] = argv[2]
    import numpy as np
    import tensorflow as tf

    if kind == "load":
        function = tf.saved_model.load(model).signatures["serving_default"]
        (spec,) = function.structured_input_signature[1].values()
        shape = json.loads(argv[2])
        function(**{spec.name: tf.ones(shape, spec.dtype)})
        return {"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if kind == "convert":
        sys.path.insert(0, str(ROOT))
        import converter as trt
        from converter.synthetic import batch_input_fn

        start = time.perf_counter()
        converter = trt.Converter(model, conversion_params=trt.ConversionParams(
            maximum_cached_engines=1, allow_build_at_runtime=False))
        converter.convert()
        converted_at = time.perf_counter()
        converter.build(batch_input_fn(converter.input_specs, [json.loads(argv[3])[0]]))
        built_at = time.perf_counter()
        converter.save(argv[2])
        done = time.perf_counter()
        return {"convert_s": converted_at - start, "build_s": built_at - converted_at,
                "save_s": done - built_at, "total_s": done - start,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "summary": converter.report().render(line_length=100, detailed=False)}
    tf.compat.v1.disable_eager_execution()
    sessions = []
    for path in argv[3].split(","):
        session = tf.compat.v1.Session(graph=tf.Graph())
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        signature = meta_graph.signature_def["serving_default"]
        (info,) = signature.inputs.values()
        fetches = [o.name for o in signature.outputs.values()]
        sessions.append((session, fetches, info.name))
    feed = np.random.default_rng(0).standard_normal(json.loads(argv[4])).astype(np.float32)
    if kind == "first":
        session, fetches, name = sessions[0]
        start = time.perf_counter()
        session.run(fetches, {name: feed})
        return {"first_s": time.perf_counter() - start}
    samples: list[list[float]] = [[] for _ in sessions]
    for _ in range(3):
        for session, fetches, name in sessions:
            session.run(fetches, {name: feed})
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline or len(samples[0]) < 20:
        for bucket, (session, fetches, name) in zip(samples, sessions, strict=True):
            start = time.perf_counter()
            session.run(fetches, {name: feed})
            bucket.append(time.perf_counter() - start)
        if len(samples[0]) >= 2000:
            break
    return {"medians_s": [statistics.median(b) for b in samples]}


def _run_worker(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "worker", *args], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _size(path: pathlib.Path, engines: bool = False) -> int:
    """Bytes of a SavedModel's files; the engine cache inside it only if `engines`."""
    return sum(p.stat().st_size for p in path.rglob("*")
               if p.is_file() and engines == ("engines" in p.relative_to(path).parts))


def bench_model(name: str, workdir: pathlib.Path) -> dict[str, Any]:
    """All five measures for one model."""
    sys.path.insert(0, str(ROOT))
    from converter.demo import build_demo_model
    from tests.support import models

    shape = list(MODELS[name])
    original = workdir / name / "original"
    converted = workdir / name / "converted"
    if name == "mlp":
        build_demo_model(original)
    else:
        models.keras_application(original, "MobileNetV2")
    conversion = _run_worker("convert", str(original), str(converted), json.dumps(shape))
    load = _run_worker("load", str(original), json.dumps(shape))
    import converter as trt

    cache = trt.install_engines(converted, workdir / name / "cache")
    empty = workdir / name / "empty-cache"
    empty.mkdir(parents=True)
    read_only = "--tf_xla_persistent_cache_read_only=true"
    with_engines = f"--tf_xla_persistent_cache_directory={cache.directory} {read_only}"
    without = f"--tf_xla_persistent_cache_directory={empty} {read_only}"
    steady = _run_worker("steady", "-", with_engines, f"{converted},{original}",
                         json.dumps(shape))["medians_s"]
    first_with = _run_worker("first", "-", with_engines, str(converted), json.dumps(shape))
    first_without = _run_worker("first", "-", without, str(converted), json.dumps(shape))
    return {
        "model": name, "shape": shape, "engines_installed": cache.installed,
        "steady_converted_ms": steady[0] * 1e3, "steady_original_ms": steady[1] * 1e3,
        "a_steady_ratio": steady[0] / steady[1],
        "first_with_engines_s": first_with["first_s"],
        "first_without_engines_s": first_without["first_s"],
        "b_first_with_over_without": first_with["first_s"] / first_without["first_s"],
        "b_first_with_over_steady": first_with["first_s"] / steady[0],
        "c_convert_build_save_s": conversion["total_s"],
        "c_breakdown_s": {k: round(conversion[k], 2) for k in ("convert_s", "build_s", "save_s")},
        "d_size_ratio": _size(converted) / _size(original),
        "d_engine_cache_kb": _size(converted, engines=True) / 1024,
        "e_peak_rss_ratio": conversion["rss_mb"] / load["rss_mb"],
        "rss_mb": {"convert": round(conversion["rss_mb"]), "load_only": round(load["rss_mb"])},
        "summary": conversion["summary"],
    }


def main() -> None:
    """Run every requested model and print a table and the JSON."""
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        print(json.dumps(_worker(sys.argv[2:])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--workdir", type=pathlib.Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="tftrt-bench-"))
    results = [bench_model(name, workdir) for name in args.models]
    print(f"{'model':10} {'(a) steady':>12} {'(b) 1st w/ vs w/o':>18} {'(b) 1st/steady':>15} "
          f"{'(c) seconds':>12} {'(d) size':>9} {'(e) RSS':>8}")
    for r in results:
        print(f"{r['model']:10} {r['a_steady_ratio']:>11.2f}x "
              f"{r['b_first_with_over_without']:>17.2f}x "
              f"{r['b_first_with_over_steady']:>14.1f}x {r['c_convert_build_save_s']:>12.1f} "
              f"{r['d_size_ratio']:>8.2f}x {r['e_peak_rss_ratio']:>7.2f}x")
    for r in results:
        print(r.pop("summary"))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
