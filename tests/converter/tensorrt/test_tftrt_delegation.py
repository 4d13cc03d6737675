"""The tensorrt backend end to end: TF-TRT converts, builds and saves a real SavedModel,
and the result serves like the original, eagerly and in a TF1 Session (TF Serving's
path). Needs TensorFlow <= 2.17 built with TensorRT and a GPU: `pytest -m tensorrt`."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from tensorflow.python.saved_model import loader_impl

import converter as trt
from converter.backend import BackendChoice
from converter.report import REPORT_FILE
from tests.support.session_run import eager_outputs, session_outputs

pytestmark = pytest.mark.tensorrt

Feed = dict[str, np.ndarray]


def _rows(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 16)).astype(np.float32)


def _batches(*sizes: int) -> Callable[[], Iterator[tuple[np.ndarray]]]:
    def input_fn() -> Iterator[tuple[np.ndarray]]:
        for seed, size in enumerate(sizes):
            yield (_rows(size, seed),)

    return input_fn


def _feeds(*sizes: int) -> list[Feed]:
    return [{"x": _rows(size, 100 + size)} for size in sizes]


def _ops_in(model_dir: pathlib.Path) -> set[str]:
    graph = loader_impl.parse_saved_model(str(model_dir)).meta_graphs[0].graph_def
    return {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}


def _assert_serves_like(original: pathlib.Path, converted: pathlib.Path, feeds: list[Feed],
                        tolerance: float) -> None:
    expected = eager_outputs(original, feeds)
    for produced in (eager_outputs(converted, feeds), session_outputs(converted, feeds)):
        for got, want in zip(produced, expected, strict=True):
            np.testing.assert_allclose(got["output_0"], want["output_0"],
                                       rtol=tolerance, atol=tolerance)


def _convert(model: pathlib.Path, **changes: object) -> trt.Converter:
    params = trt.ConversionParams(backend="tensorrt", **changes)  # type: ignore[arg-type]
    return trt.Converter(model, conversion_params=params)


def test_fp32_engines_are_built_saved_and_serve(mlp_dir: pathlib.Path,
                                                tmp_path: pathlib.Path) -> None:
    converter = _convert(mlp_dir)
    assert converter.backend == BackendChoice("tensorrt", "requested")
    converter.convert()
    converter.build(_batches(1, 4))
    converter.save(tmp_path / "out")
    report = converter.report()
    assert report.backend == "tensorrt" and report.built
    assert report.segments and report.ops_in_segments >= 3
    assert report.built_inputs == [[[1, 16]], [[4, 16]]]
    out = tmp_path / "out"
    assert "TRTEngineOp" in _ops_in(out)
    assert list((out / "assets").glob("trt-serialized-engine.*")), "no engine was saved"
    assert json.loads((out / REPORT_FILE).read_text())["backend"] == "tensorrt"
    _assert_serves_like(mlp_dir, out, _feeds(1, 4), tolerance=1e-4)


def test_auto_picks_tensorrt_and_the_summary_says_why(mlp_dir: pathlib.Path) -> None:
    converter = trt.Converter(mlp_dir)
    assert converter.backend.name == "tensorrt"
    assert converter.backend.reason.startswith("auto: TF-TRT can run here")
    converter.convert()
    lines: list[str] = []
    text = converter.summary(print_fn=lines.append)
    assert "backend tensorrt (auto: TF-TRT can run here" in text
    assert "TF-TRT's summary:" in lines
    assert "Total number of TensorRT engines: " in text


def test_fp16_without_build_at_runtime_runs_other_shapes_natively(
        mlp_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    converter = _convert(mlp_dir, precision_mode="FP16", allow_build_at_runtime=False)
    converter.convert()
    converter.build(_batches(2))
    converter.save(tmp_path / "out")
    segment = converter.report().segments[0]
    assert (segment.precision, segment.fallback) == ("FP16", "native")
    _assert_serves_like(mlp_dir, tmp_path / "out", _feeds(2, 7), tolerance=2e-2)


def test_int8_calibrates_with_calibration_input_fn(mlp_dir: pathlib.Path,
                                                   tmp_path: pathlib.Path) -> None:
    converter = _convert(mlp_dir, precision_mode="INT8")
    with pytest.raises(ValueError, match="needs calibration_input_fn"):
        converter.convert()
    converter.convert(calibration_input_fn=_batches(8, 8, 8, 8))
    converter.build(_batches(8))
    converter.save(tmp_path / "out")
    assert converter.report().segments[0].precision == "INT8"
    _assert_serves_like(mlp_dir, tmp_path / "out", _feeds(8), tolerance=0.1)


def test_dynamic_shape_profiles(mlp_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    converter = trt.Converter(mlp_dir, conversion_params=trt.ConversionParams(backend="tensorrt"),
                              use_dynamic_shape=True, dynamic_shape_profile_strategy="Optimal")
    converter.convert()
    converter.build(_batches(1, 8))
    converter.save(tmp_path / "out")
    _assert_serves_like(mlp_dir, tmp_path / "out", _feeds(1, 8), tolerance=1e-4)


def test_a_model_without_engines_is_saved_unchanged(mlp_dir: pathlib.Path,
                                                    tmp_path: pathlib.Path) -> None:
    converter = _convert(mlp_dir, minimum_segment_size=1000)
    converter.convert()
    converter.build(_batches(2))
    converter.save(tmp_path / "out")
    assert converter.report().nothing_to_compile
    assert ((tmp_path / "out" / "saved_model.pb").read_bytes()
            == (mlp_dir / "saved_model.pb").read_bytes())


def test_our_checks_come_before_tf_trt(mlp_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    converter = _convert(mlp_dir)
    with pytest.raises(RuntimeError, match="before convert"):
        converter.save(tmp_path / "early")
    converter.convert()
    with pytest.raises(trt.InputFnError, match="dtype float64"):
        converter.build(lambda: iter([(np.ones((2, 16), np.float64),)]))
    with pytest.raises(ValueError, match="calibration_input_fn"):
        _convert(mlp_dir).convert(calibration_input_fn=_batches(1))
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="never overwrites"):
        converter.save(tmp_path / "taken")
    assert list((tmp_path / "taken").iterdir()) == []
