"""Converter benchmark: ours against the peers, ratios measured side by side in one run
(issues 2, 13 and 20).

    python bench/converter_bench.py [--models mobilenet resnet ...]
        [--precisions FP32 BF16 INT8] [--quick] [--workdir DIR]

The peers come from the optional ``bench`` extra: ``pip install -e '.[bench]'`` (in a
venv of its own if you like; without it their columns say so).

For each corpus model (tests/converter/corpus.py, at serving sizes: 224x224 images, a
4-layer encoder over 128 tokens) the converter converts and builds at batch 1 and 8
once per precision (a precision it refuses is shown as refused in its rows). Then one
process times, at each batch, calls interleaved (each contender once per round, each
round starting one contender later; median of at least 11 rounds):

- the original SavedModel and every converted one, served through the TF1 Session
  loader (TF Serving's path);
- OpenVINO (``openvino.convert_model(saved_model_dir)``, input shape fixed per batch,
  ``PERFORMANCE_HINT=LATENCY``) with ``INFERENCE_PRECISION_HINT=f32`` and with its
  default precision (bf16 on a CPU with native bf16);
- ONNX Runtime (CPU execution provider) on tf2onnx's conversion, where it converts.

Latencies are fractions of the original's, beside issue 20's goals, each with pass or
fail: FP32 at most 1.0x OpenVINO f32; BF16 (and FP16) at most 1.2x OpenVINO's default;
INT8 on the convolution networks at most 1.0x OpenVINO's default; never slower than
the original. The goals apply to the convolution networks and the transformer.

Also, per precision: convert + build + save wall time; converted SavedModel size /
original (the report and engine cache under assets.extra/tftrt left out, the engine
cache reported apart); peak RSS while converting / while loading and running the
original alone in a Session. Each fresh process is a subprocess of this script
(`worker` sub-command). Everything measured is written to DIR/results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
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

from peer_runtimes import (  # noqa: E402  (bench/ is first on sys.path: see the module)
    ONNX_RUNTIME,
    OPENVINO_DEFAULT,
    OPENVINO_F32,
    PEERS,
    PeerFiles,
    convert_for_peers,
    onnxruntime_call,
    openvino_calls,
)

from converter import ONEDNN_VARIABLE  # noqa: E402  (no TensorFlow imported)

BATCHES = (1, 8)
MODELS = ("mlp", "mobilenet", "resnet", "efficientnet", "transformer", "counter",
          "tf1-estimator", "tf1-unknown-rank")
"""Every corpus model: the demo MLP, three convolution networks, the encoder, a
stateful counter, two TF1 exports."""
QUICK_MODELS = ("mlp", "transformer")
CNNS = ("mobilenet", "resnet", "efficientnet")
GOAL_MODELS = (*CNNS, "transformer")
"""The models issue 20's goals are about."""
PRECISIONS = ("FP32", "BF16", "INT8")


@dataclasses.dataclass(frozen=True)
class Timing:
    """How long the steady-state measurement runs at each batch."""

    rounds: int
    """At least this many rounds."""
    seconds: float
    """And at least this long, up to `_MOST_ROUNDS` rounds."""


FULL = Timing(rounds=21, seconds=10.0)
QUICK = Timing(rounds=11, seconds=2.0)
_MOST_ROUNDS = 2000
_WARMUP_ROUNDS = 3


def _build(name: str, directory: pathlib.Path) -> None:
    from converter import build_demo_model
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

    from converter import batch_input_fn

    if name == "tf1-estimator":
        from tests.converter import corpus

        examples = corpus.examples()
        return [{"inputs": np.resize(examples, batch)} for batch in BATCHES]
    from converter import graph_input_specs, read_meta_graph

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


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def _convert(name: str, model: str, output: str, precision: str) -> dict[str, Any]:
    """Convert, build at BATCHES and save at `precision`; a refusal (any error the
    converter raises on purpose) is the answer, not a failure."""
    import converter as trt
    from converter import ConverterError

    feeds = _feeds(name, model)
    start = time.perf_counter()
    try:
        converter = trt.Converter(model, precision_mode=precision)
        # TF-TRT's INT8 recipe calibrates on inputs like the ones it will serve.
        converter.convert(calibration_input_fn=(lambda: iter(feeds))
                          if precision.upper() == "INT8" else None)
        converted_at = time.perf_counter()
        converter.build(lambda: iter(feeds))
        built_at = time.perf_counter()
        converter.save(output)
    except ConverterError as error:
        return {"refused": _first_line(error)}
    done = time.perf_counter()
    report = converter.report()
    return {"convert_s": converted_at - start, "build_s": built_at - converted_at,
            "save_s": done - built_at, "total_s": done - start,
            "rss_mb": _peak_rss_mb(),
            # Its Session children (timing, engine export); Linux counts the parent's
            # RSS at fork in this too, so it is an upper bound.
            "children_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "chosen": report.chosen, "computed_in": report.precision,
            "precision_reason": report.precision_reason,
            "summary": report.render(line_length=100, detailed=False)}


def _interleaved_medians(calls: list[Callable[[], object]], timing: Timing) -> list[float]:
    """Each call's median seconds, the calls made in turn round after round so that
    changes in machine load touch all alike."""
    for _ in range(_WARMUP_ROUNDS):
        for call in calls:
            call()
    samples: list[list[float]] = [[] for _ in calls]
    deadline = time.perf_counter() + timing.seconds
    rounds = 0
    while rounds < timing.rounds or (time.perf_counter() < deadline
                                     and rounds < _MOST_ROUNDS):
        # Each round starts one contender later: none always runs right after another
        # (whose threads may still be winding down).
        for offset in range(len(calls)):
            index = (rounds + offset) % len(calls)
            start = time.perf_counter()
            calls[index]()
            samples[index].append(time.perf_counter() - start)
        rounds += 1
    return [statistics.median(bucket) for bucket in samples]


def _steady(spec: dict[str, Any]) -> dict[str, Any]:
    """Every contender in this one process, per batch: median ms, scaled error of its
    outputs against the original's, or why it could not run."""
    from converter import scaled_error

    name, original = spec["name"], spec["original"]
    converted: dict[str, str] = spec["converted"]
    feeds = _feeds(name, original)
    sessions = _sessions([original, *converted.values()])
    outputs = sorted(sessions[0].signature_def("serving_default").outputs)
    timing = Timing(**spec["timing"])
    per_batch = []
    for batch, feed in zip(BATCHES, feeds, strict=True):
        calls: dict[str, Callable[[], list[Any]]] = {
            label: served.caller("serving_default", feed, outputs)
            for label, served in zip(["original", *converted], sessions, strict=True)}
        failures: dict[str, str] = {}
        default_precision = ""
        if spec["openvino_ir"]:
            try:
                ov_calls, default_precision = openvino_calls(spec["openvino_ir"], feed, outputs)
                calls.update(ov_calls)
            except Exception as error:  # a model OpenVINO cannot compile is a table cell
                failures[OPENVINO_F32] = failures[OPENVINO_DEFAULT] = (
                    f"fails (openvino: {_first_line(error)})")
        if spec["onnx"]:
            try:
                calls[ONNX_RUNTIME] = onnxruntime_call(spec["onnx"], feed, outputs)
            except Exception as error:  # likewise a model ONNX Runtime cannot load
                failures[ONNX_RUNTIME] = f"fails (onnxruntime: {_first_line(error)})"
        expected = calls["original"]()
        errors: dict[str, float] = {}
        for label, call in list(calls.items()):
            try:
                errors[label] = scaled_error(call(), expected)
            except Exception as error:  # one that cannot run is left out, with why
                failures[label] = f"fails (run: {_first_line(error)})"
                del calls[label]
        medians = _interleaved_medians(list(calls.values()), timing)
        per_batch.append({"batch": batch,
                          "ms": {label: m * 1e3 for label, m in zip(calls, medians,
                                                                    strict=True)},
                          "errors": errors, "failures": failures,
                          "openvino_default_precision": default_precision})
    return {"batches": per_batch}


def _worker(argv: list[str]) -> dict[str, Any]:
    """Runs in a fresh process; argv[0] says what to measure."""
    kind = argv[0]
    if kind == "convert":
        return _convert(*argv[1:5])
    if kind == "load":
        name, model = argv[1:3]
        (served,) = _sessions([model])
        served.run("serving_default", _feeds(name, model)[-1])
        return {"rss_mb": _peak_rss_mb()}
    if kind == "peers":
        return dataclasses.asdict(convert_for_peers(pathlib.Path(argv[1]),
                                                    pathlib.Path(argv[2])))
    return _steady(json.loads(argv[1]))


ONEDNN: dict[str, str] = {}
"""Set by --onednn: the TF_ENABLE_ONEDNN_OPTS every worker starts with (empty: the
machine's default), so the original, ours and the int8 candidate's kernels run as in
the pod (k8s/ sets it to 1 for TF Serving and the sidecar)."""


def _run_worker(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "worker", *args], capture_output=True,
                          text=True, check=False, env={**os.environ, **ONEDNN})
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


def _conversion(name: str, original: pathlib.Path, precision: str,
                load_rss_mb: float) -> dict[str, Any]:
    """One precision's conversion measures, or why it has none."""
    converted = original.parent / f"converted-{precision}"
    try:
        result = _run_worker("convert", name, str(original), str(converted), precision)
    except RuntimeError as error:  # a crash is this row's result; the run goes on
        return {"precision": precision,
                "failed": str(error).strip().splitlines()[-1][:200]}
    if "refused" in result:
        return {"precision": precision, **result}
    return {
        "precision": precision, "path": str(converted), "chosen": result["chosen"],
        "computed_in": result["computed_in"], "precision_reason": result["precision_reason"],
        "convert_build_save_s": result["total_s"],
        "breakdown_s": {k: round(result[k], 2) for k in ("convert_s", "build_s", "save_s")},
        "size_ratio": _size(converted) / _size(original),
        "engine_cache_kb": _size(converted, engines=True) / 1024,
        "peak_rss_ratio": result["rss_mb"] / load_rss_mb,
        "rss_mb": {"convert": round(result["rss_mb"]), "load_only": round(load_rss_mb),
                   "convert_children_at_most": round(result["children_rss_mb"])},
        "summary": result["summary"],
    }


def bench_model(name: str, workdir: pathlib.Path, precisions: list[str],
                timing: Timing) -> dict[str, Any]:
    """Every measure for one model."""
    original = workdir / name / "original"
    original.parent.mkdir(parents=True)
    _build(name, original)
    load_rss = _run_worker("load", name, str(original))["rss_mb"]
    conversions = [_conversion(name, original, p, load_rss) for p in precisions]
    peers = PeerFiles(**_run_worker("peers", str(original), str(workdir / name / "peers")))
    steady = _run_worker("steady", json.dumps({
        "name": name, "original": str(original), "timing": dataclasses.asdict(timing),
        "converted": {f"ours {c['precision']}": c["path"] for c in conversions if "path" in c},
        "openvino_ir": peers.openvino_ir, "onnx": peers.onnx}))
    return {"model": name, "conversions": conversions, "peers": dataclasses.asdict(peers),
            "batches": steady["batches"]}


def _goal(model: str, precision: str, ours: float,
          peers: dict[str, float | None]) -> tuple[str, str]:
    """Issue 20's goal for this cell, and whether `ours` (a ratio to the original) meets it."""
    kind = precision.upper()
    target: tuple[str, float, str] | None = None
    if model in GOAL_MODELS and kind == "FP32":
        target = ("1.0x", 1.0, OPENVINO_F32)
    elif model in GOAL_MODELS and kind in ("BF16", "FP16"):
        target = ("1.2x", 1.2, OPENVINO_DEFAULT)
    elif model in CNNS and kind == "INT8":
        target = ("1.0x", 1.0, OPENVINO_DEFAULT)
    if target is None:
        return "<= 1.0 (never slower)", "pass" if ours <= 1.0 else "fail: slower"
    words, factor, peer = target
    text = f"<= {words} {peer}"
    figure = peers.get(peer)
    if figure is None:
        return text, "no peer figure"
    relative = ours / figure
    verdict = "pass" if relative <= factor and ours <= 1.0 else "fail"
    if ours > 1.0:
        verdict += ", slower than the original"
    return text, f"{verdict} ({relative:.2f}x)"


_CELL_CHARACTERS = 72
"""A failure's text in a table cell is cut here; results.json has it whole."""


def _cell(ratio: float | None, failure: str | None) -> str:
    if ratio is not None:
        return f"{ratio:.2f}"
    text = failure or "-"
    return text if len(text) <= _CELL_CHARACTERS else text[:_CELL_CHARACTERS - 3] + "..."


def latency_table(results: list[dict[str, Any]]) -> list[str]:
    """The main table: per model, batch and precision, ours and the peers as fractions
    of the original's latency, with the goal and whether it is met."""
    lines = ["| model | batch | original ms | precision | chosen | ours | "
             + " | ".join(PEERS) + " | goal | met |",
             "|" + "---|" * (8 + len(PEERS))]
    for result in results:
        for entry in result["batches"]:
            ms, failures = entry["ms"], entry["failures"]
            base = ms["original"]
            peers = {p: ms[p] / base if p in ms else None for p in PEERS}
            fallback = {OPENVINO_F32: result["peers"]["openvino_failure"],
                        OPENVINO_DEFAULT: result["peers"]["openvino_failure"],
                        ONNX_RUNTIME: result["peers"]["onnx_failure"]}
            peer_cells = [_cell(peers[p], failures.get(p) or fallback[p]) for p in PEERS]
            for conversion in result["conversions"]:
                precision = conversion["precision"]
                shown = precision
                if conversion.get("computed_in") and conversion["computed_in"] != precision:
                    shown = f"{precision} -> {conversion['computed_in']}"
                label = f"ours {precision}"
                if label in ms:
                    ours = ms[label] / base
                    goal, met = _goal(result["model"], precision, ours, peers)
                    ours_cell, chosen = f"{ours:.2f}", conversion["chosen"] or "-"
                else:
                    if "refused" in conversion:
                        why = f"refused: {conversion['refused']}"
                    elif "failed" in conversion:
                        why = f"failed: {conversion['failed']}"
                    else:
                        why = failures.get(label, "-")
                    ours_cell, chosen, goal, met = _cell(None, why), "-", "-", "not met"
                lines.append(f"| {result['model']} | {entry['batch']} | {base:.2f} | {shown} | "
                             f"{chosen} | {ours_cell} | " + " | ".join(peer_cells)
                             + f" | {goal} | {met} |")
    return lines


def error_table(results: list[dict[str, Any]]) -> list[str]:
    """Each contender's largest scaled error against the original's outputs."""
    labels = sorted({label for r in results for e in r["batches"] for label in e["errors"]
                     if label != "original"}, key=lambda lab: (lab in PEERS, lab))
    lines = ["| model | batch | " + " | ".join(labels) + " | OpenVINO default computes in |",
             "|" + "---|" * (3 + len(labels))]
    for result in results:
        for entry in result["batches"]:
            cells = [f"{entry['errors'][lab]:.1e}" if lab in entry["errors"] else "-"
                     for lab in labels]
            lines.append(f"| {result['model']} | {entry['batch']} | " + " | ".join(cells)
                         + f" | {entry['openvino_default_precision'] or '-'} |")
    return lines


def conversion_table(results: list[dict[str, Any]]) -> list[str]:
    """Per model and precision: what the conversion cost; and the peers' conversions."""
    lines = ["| model | precision | computed in | chosen | convert+build+save s | size | "
             "peak RSS | OpenVINO convert s | tf2onnx s |", "|" + "---|" * 9]
    for result in results:
        peers = result["peers"]
        peer_cells = [f"{peers['openvino_seconds']:.1f}" if peers["openvino_seconds"] else "-",
                      f"{peers['onnx_seconds']:.1f}" if peers["onnx_seconds"] else "-"]
        for c in result["conversions"]:
            if "path" not in c:
                why = f"refused: {c['refused']}" if "refused" in c else f"failed: {c['failed']}"
                lines.append(f"| {result['model']} | {c['precision']} | {_cell(None, why)} | "
                             "| | | | "
                             + " | ".join(peer_cells) + " |")
                continue
            lines.append(
                f"| {result['model']} | {c['precision']} | {c['computed_in']} | "
                f"{c['chosen'] or '-'} | {c['convert_build_save_s']:.1f} | "
                f"{c['size_ratio']:.2f}x | {c['peak_rss_ratio']:.2f}x | "
                + " | ".join(peer_cells) + " |")
    return lines


def main() -> None:
    """Run every requested model and print the tables; the JSON goes to the workdir."""
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        print(json.dumps(_worker(sys.argv[2:])))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, choices=list(MODELS),
                        help=f"default: all ({' '.join(MODELS)}); with --quick: "
                             f"{' '.join(QUICK_MODELS)}")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS),
                        help="precision modes to convert with, each in its rows; one "
                             "the converter refuses is shown as refused")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run: {QUICK.rounds} rounds and {QUICK.seconds:g} s "
                             f"per batch instead of {FULL.rounds} and {FULL.seconds:g} s")
    parser.add_argument("--onednn", choices=("on", "off", "default"), default="on",
                        help="TF_ENABLE_ONEDNN_OPTS for every process: on (as the pod "
                             "runs TF Serving and the sidecar; INT8 needs it), off, or the "
                             "machine's default")
    parser.add_argument("--workdir", type=pathlib.Path, default=None)
    args = parser.parse_args()
    if args.onednn != "default":
        ONEDNN[ONEDNN_VARIABLE] = "1" if args.onednn == "on" else "0"
    models = args.models or list(QUICK_MODELS if args.quick else MODELS)
    timing = QUICK if args.quick else FULL
    workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="tftrt-bench-"))
    results = [bench_model(name, workdir, args.precisions, timing) for name in models]
    for result in results:
        for conversion in result["conversions"]:
            if "summary" in conversion:
                print(conversion.pop("summary"))
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
    print("\nConversions (size and RSS as ratios to the original's):")
    print("\n".join(conversion_table(results)))
    print("\nLargest scaled error against the original's outputs:")
    print("\n".join(error_table(results)))
    print(f"\nLatency as a fraction of the original's (TF1 Session path), one process, calls "
          f"interleaved, median of at least {timing.rounds} rounds:")
    print("\n".join(latency_table(results)))
    print(f"\nAll figures: {workdir / 'results.json'}")


if __name__ == "__main__":
    main()
