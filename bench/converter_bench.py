"""Converter benchmark: ratios measured side by side in one run (issues 2 and 13).

    python bench/converter_bench.py [--models mobilenet resnet ...] [--workdir DIR]

For each corpus model (tests/converter/corpus.py, at serving sizes: 224x224 images,
a 4-layer encoder over 128 tokens), at batch 1 and 8: (a) steady-state latency
converted / original, both served through the TF1 Session loader in one process,
calls interleaved; the candidate the converter chose; (c) convert + build + save
wall time; (d) converted SavedModel size / original (the report and engine cache
under assets.extra/tftrt left out, the engine cache reported apart); (e) peak RSS while
converting (this process; the Session timing it starts runs apart) / while loading
and running the original alone in a Session. Each
fresh process is a subprocess of this script (`worker` sub-command). Goals
(issue 13): (a) <= 0.85x on convolution networks and the transformer, never above
1.0x; (d) <= 1.1x; (e) <= 2x.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from converter import ServingSession

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCHES = (1, 8)
MODELS = ("mlp", "mobilenet", "resnet", "efficientnet", "transformer", "counter",
          "tf1-estimator", "tf1-unknown-rank")
"""Every corpus model: the demo MLP, three convolution networks, the encoder, a
stateful counter, two TF1 exports."""
_STEADY_SECONDS = 8.0


def _build(name: str, directory: pathlib.Path) -> None:
    from converter.demo import build_demo_model
    from tests.converter import corpus

    builders: dict[str, Callable[[pathlib.Path], object]] = {
        "mlp": build_demo_model,
        "mobilenet": lambda d: corpus.keras_application(d, "MobileNetV2", 224),
        "resnet": lambda d: corpus.keras_application(d, "ResNet50", 224),
        "efficientnet": lambda d: corpus.keras_application(d, "EfficientNetB0", 224),
        "transformer": lambda d: corpus.transformer_encoder(d, layers=4, sequence=128,
                                                            width=128),
        "counter": corpus.stateful_counter,
        "tf1-estimator": corpus.tf1_estimator,
        "tf1-unknown-rank": corpus.tf1_unknown_rank,
    }
    builders[name](directory)


def _feeds(name: str, model: str) -> list[dict[str, Any]]:
    """One input per batch size in BATCHES (serialized tf.Example for the estimator)."""
    import numpy as np

    from converter.synthetic import batch_input_fn

    if name == "tf1-estimator":
        from tests.converter import corpus

        examples = corpus.examples()
        return [{"inputs": np.resize(examples, batch)} for batch in BATCHES]
    from converter.loading import graph_input_specs, read_meta_graph

    # The signature as saved_model.pb has it: nothing is loaded, so a worker may
    # still switch eager execution off for its Sessions.
    specs = graph_input_specs(read_meta_graph(model)[1], "serving_default")
    return list(batch_input_fn(specs, list(BATCHES))())


def _sessions(paths: list[str]) -> list[ServingSession]:
    """Each model served the way TF Serving serves it, eager execution off as there."""
    import tensorflow as tf

    from converter import ServingSession

    tf.compat.v1.disable_eager_execution()
    return [ServingSession.load(path) for path in paths]


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries that
    across exec, so a child would report its parent's peak."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _worker(argv: list[str]) -> dict[str, Any]:
    """Runs in a fresh process; argv[0] says what to measure."""
    kind, name, model = argv[0], argv[1], argv[2]
    feeds = _feeds(name, model)
    if kind == "load":
        (served,) = _sessions([model])
        served.run("serving_default", feeds[-1])
        return {"rss_mb": _peak_rss_mb()}
    if kind == "convert":
        import converter as trt

        start = time.perf_counter()
        converter = trt.Converter(model)
        converter.convert()
        converted_at = time.perf_counter()
        converter.build(lambda: iter(feeds))
        built_at = time.perf_counter()
        converter.save(argv[3])
        done = time.perf_counter()
        report = converter.report()
        return {"convert_s": converted_at - start, "build_s": built_at - converted_at,
                "save_s": done - built_at, "total_s": done - start,
                "rss_mb": _peak_rss_mb(),
                # Its Session children (timing, engine export); Linux counts the
                # parent's RSS at fork in this too, so it is an upper bound.
                "children_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "chosen": report.chosen,
                "summary": report.render(line_length=100, detailed=False)}
    # steady: converted and original in one process, calls interleaved, per batch
    sessions = _sessions([model, argv[3]])
    medians = []
    for feed in feeds:
        calls = [served.caller("serving_default", feed) for served in sessions]
        for call in calls * 3:
            call()
        samples: list[list[float]] = [[] for _ in calls]
        deadline = time.perf_counter() + _STEADY_SECONDS
        while (time.perf_counter() < deadline or len(samples[0]) < 20) and len(
                samples[0]) < 2000:
            for bucket, call in zip(samples, calls, strict=True):
                start = time.perf_counter()
                call()
                bucket.append(time.perf_counter() - start)
        medians.append([statistics.median(b) for b in samples])
    return {"medians_s": medians}


def _run_worker(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "worker", *args], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {args[:2]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _size(path: pathlib.Path, engines: bool = False) -> int:
    """Bytes of a SavedModel's files, without what the converter adds under
    assets.extra/tftrt (its report, and the engine cache: an optional,
    device-specific cache); with `engines`, the engine cache alone."""
    def part(p: pathlib.Path) -> str:
        parts = p.relative_to(path).parts
        if parts[:2] != ("assets.extra", "tftrt"):
            return "model"
        return "engines" if "engines" in parts else "report"

    wanted = "engines" if engines else "model"
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and part(p) == wanted)


def bench_model(name: str, workdir: pathlib.Path) -> dict[str, Any]:
    """Every measure for one model."""
    original = workdir / name / "original"
    converted = workdir / name / "converted"
    original.parent.mkdir(parents=True)
    _build(name, original)
    conversion = _run_worker("convert", name, str(original), str(converted))
    load = _run_worker("load", name, str(original))
    steady = _run_worker("steady", name, str(converted), str(original))["medians_s"]
    return {
        "model": name, "chosen": conversion["chosen"],
        "a_ratio": {f"batch {b}": m[0] / m[1] for b, m in zip(BATCHES, steady, strict=True)},
        "latency_ms": {f"batch {b}": {"converted": m[0] * 1e3, "original": m[1] * 1e3}
                       for b, m in zip(BATCHES, steady, strict=True)},
        "c_convert_build_save_s": conversion["total_s"],
        "c_breakdown_s": {k: round(conversion[k], 2) for k in ("convert_s", "build_s", "save_s")},
        "d_size_ratio": _size(converted) / _size(original),
        "d_engine_cache_kb": _size(converted, engines=True) / 1024,
        "e_peak_rss_ratio": conversion["rss_mb"] / load["rss_mb"],
        "rss_mb": {"convert": round(conversion["rss_mb"]), "load_only": round(load["rss_mb"]),
                   "convert_children_at_most": round(conversion["children_rss_mb"])},
        "summary": conversion["summary"],
    }


def main() -> None:
    """Run every requested model and print a table and the JSON."""
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        print(json.dumps(_worker(sys.argv[2:])))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--workdir", type=pathlib.Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="tftrt-bench-"))
    results = [bench_model(name, workdir) for name in args.models]
    print(f"{'model':17} {'chosen':11} {'(a) b=1':>8} {'(a) b=8':>8} {'(c) s':>7} "
          f"{'(d) size':>9} {'(e) RSS':>8}")
    for r in results:
        ratios = [r["a_ratio"][f"batch {b}"] for b in BATCHES]
        print(f"{r['model']:17} {r['chosen'] or '-':11} {ratios[0]:>7.2f}x {ratios[1]:>7.2f}x "
              f"{r['c_convert_build_save_s']:>7.1f} {r['d_size_ratio']:>8.2f}x "
              f"{r['e_peak_rss_ratio']:>7.2f}x")
    for r in results:
        print(r.pop("summary"))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
