"""The converter's peers on a CPU, for ``bench/converter_bench.py``: OpenVINO reading the
SavedModel directly, and ONNX Runtime on tf2onnx's conversion of it.

Both come from the optional ``bench`` extra (``pip install -e '.[bench]'``); nothing in
converter/ or sidecar/ imports them. Converting runs in a process of its own (both
converters load the model with TensorFlow's eager API; the timing process runs the TF1
Session path with eager execution off), into files the timing process loads:
OpenVINO's IR, saved with float32 weights as ``convert_model`` made them, and the
ONNX file.

The script imports this module by name: bench/ is the script's directory, so first on
``sys.path``.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

OPENVINO_F32 = "OpenVINO f32"
ONNX_RUNTIME = "ONNX Runtime"
OPENVINO_DEFAULT = "OpenVINO default"
PEERS = (OPENVINO_F32, ONNX_RUNTIME, OPENVINO_DEFAULT)
"""The peer columns, in the order DESIGN.md fact 18's table has them."""

_MISSING = "not installed: pip install -e '.[bench]'"
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b:?")

Call = Callable[[], list[np.ndarray]]
"""One inference on a fixed feed, returning the outputs in the signature's output order."""


@dataclasses.dataclass(frozen=True)
class PeerFiles:
    """What converting a SavedModel for the peers produced: a file, or why there is none."""

    openvino_ir: str | None
    openvino_failure: str | None
    openvino_seconds: float | None
    onnx: str | None
    onnx_failure: str | None
    onnx_seconds: float | None


def _first_line(error: BaseException | str) -> str:
    text = str(error).strip()
    return (text.splitlines() or [type(error).__name__])[0][:160]


def _cli_failure(stderr: str) -> str:
    """The exception a Python CLI died of: the last line naming one, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    named = [line for line in lines if _EXCEPTION_LINE.match(line)]
    return ((named or lines or ["no output"])[-1])[:160]


def convert_for_peers(saved_model: pathlib.Path, directory: pathlib.Path) -> PeerFiles:
    """Convert `saved_model`'s serving signature for OpenVINO and ONNX Runtime into
    `directory`; a converter that fails or is not installed is recorded, not raised."""
    directory.mkdir(parents=True, exist_ok=True)
    ir: str | None = None
    ir_failure: str | None = None
    ir_seconds: float | None = None
    try:
        import openvino
    except ImportError:
        ir_failure = _MISSING
    else:
        start = time.perf_counter()
        try:
            model = openvino.convert_model(str(saved_model))
            ir_seconds = time.perf_counter() - start
            ir = str(directory / "openvino.xml")
            # Keep the float32 weights: save_model halves them by default, which is
            # not what convert_model hands a user who compiles it in memory.
            openvino.save_model(model, ir, compress_to_fp16=False)
        except Exception as error:  # a model OpenVINO cannot read is a table cell
            ir, ir_failure = None, f"fails (openvino: {_first_line(error)})"
    onnx, onnx_failure, onnx_seconds = _tf2onnx(saved_model, directory / "model.onnx")
    return PeerFiles(ir, ir_failure, ir_seconds, onnx, onnx_failure, onnx_seconds)


def _tf2onnx(saved_model: pathlib.Path,
             output: pathlib.Path) -> tuple[str | None, str | None, float | None]:
    """tf2onnx's command line, as its users run it, on the serving signature."""
    try:
        import onnxruntime  # noqa: F401  (the column needs both)
        import tf2onnx  # noqa: F401
    except ImportError:
        return None, _MISSING, None
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model),
         "--tag", "serve", "--signature_def", "serving_default", "--output", str(output)],
        capture_output=True, text=True, check=False)
    if done.returncode != 0 or not output.exists():
        return None, f"fails (tf2onnx: {_cli_failure(done.stderr)})", None
    return str(output), None, time.perf_counter() - start


def _by_name(available: Sequence[Any], names: Callable[[Any], set[str]],
             wanted: Sequence[str], what: str) -> list[Any]:
    """The entries of `available` for the signature's names `wanted`, in that order;
    a lone output stands for a lone signature output whatever it is called."""
    if len(available) == 1 and len(wanted) == 1:
        return list(available)
    chosen = []
    for name in wanted:
        matches = [entry for entry in available if name in names(entry)]
        if not matches:
            raise LookupError(f"{what} has no tensor named {name!r}")
        chosen.append(matches[0])
    return chosen


def openvino_calls(ir: str, feed: Mapping[str, np.ndarray],
                   outputs: Sequence[str]) -> tuple[dict[str, Call], str]:
    """The two OpenVINO columns for `feed`'s shapes: the model compiled with its input
    shapes fixed to the feed's and ``PERFORMANCE_HINT=LATENCY``, once with
    ``INFERENCE_PRECISION_HINT=f32`` and once with no precision hint; and the precision
    OpenVINO chose by default on this CPU."""
    import openvino

    core = openvino.Core()
    model = core.read_model(ir)
    inputs = _by_name(model.inputs, lambda port: set(port.get_names()), sorted(feed),
                      "the OpenVINO model")
    model.reshape({port: list(feed[name].shape)
                   for port, name in zip(inputs, sorted(feed), strict=True)})
    calls: dict[str, Call] = {}
    default_precision = ""
    for column, config in ((OPENVINO_F32, {"INFERENCE_PRECISION_HINT": "f32"}),
                           (OPENVINO_DEFAULT, {})):
        compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", **config})
        if column == OPENVINO_DEFAULT:
            default_precision = compiled.get_property(
                "INFERENCE_PRECISION_HINT").get_type_name()
        request = compiled.create_infer_request()
        ports = _by_name(compiled.outputs, lambda port: set(port.get_names()), outputs,
                         "the OpenVINO model")
        arrays = {port: feed[name] for port, name in
                  zip(_by_name(compiled.inputs, lambda port: set(port.get_names()),
                               sorted(feed), "the OpenVINO model"), sorted(feed),
                      strict=True)}
        calls[column] = _openvino_call(request, arrays, ports)
    return calls, default_precision


def _openvino_call(request: Any, arrays: dict[Any, np.ndarray], ports: list[Any]) -> Call:
    def call() -> list[np.ndarray]:
        results = request.infer(arrays)
        return [np.asarray(results[port]) for port in ports]

    return call


def onnxruntime_call(onnx: str, feed: Mapping[str, np.ndarray],
                     outputs: Sequence[str]) -> Call:
    """ONNX Runtime's CPU execution provider on the tf2onnx file, all graph
    optimizations on (its default)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Its pool's threads spin after a call by default; interleaved with the other
    # contenders on the same cores, they would slow the next contender's call.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    names = [entry.name for entry in _by_name(session.get_outputs(), lambda o: {o.name},
                                              outputs, "the ONNX model")]
    arrays = {entry.name: feed[name] for entry, name in
              zip(_by_name(session.get_inputs(), lambda i: {i.name}, sorted(feed),
                           "the ONNX model"), sorted(feed), strict=True)}
    return lambda: [np.asarray(value) for value in session.run(names, arrays)]
