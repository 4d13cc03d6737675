"""Converted models answer as the originals do, through both loaders."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import numpy as np
import pytest

import converter as trt
from converter.savedmodel.synthetic import batch_input_fn
from tests.converter.conftest import ConvertedApplication
from tests.support.session_run import eager_outputs, session_outputs

# One worker converts the Keras applications once for every module that reads them
# (tests/converter/conftest.py: converted_applications), under pytest -n.
pytestmark = pytest.mark.xdist_group("keras_applications")


def _convert(source: pathlib.Path, output: pathlib.Path, batches: list[int],
             **params: object) -> trt.Converter:
    """Engines are kept whatever their speed, so the outputs compared come from them."""
    params.setdefault("keep_slower_engines", True)
    converter = trt.Converter(source, conversion_params=trt.ConversionParams(**params))  # type: ignore[arg-type]
    converter.convert()
    converter.build(batch_input_fn(converter.input_specs, batches))
    converter.save(output)
    return converter


def _feeds(converter: trt.Converter, batches: list[int]) -> list[dict[str, np.ndarray]]:
    return list(batch_input_fn(converter.input_specs, batches, seed=11)())


def _assert_close(got: list[dict[str, np.ndarray]], want: list[dict[str, np.ndarray]],
                  rtol: float, atol: float) -> None:
    for produced, expected in zip(got, want, strict=True):
        assert produced.keys() == expected.keys()
        for name in expected:
            assert produced[name].dtype == expected[name].dtype, name
            np.testing.assert_allclose(produced[name], expected[name], rtol=rtol, atol=atol,
                                       err_msg=name)


@pytest.mark.parametrize("fixture", ["mlp_dir", "text_dir", "loop_dir", "mixed_dir"])
@pytest.mark.parametrize("build_at_runtime", [True, False])
def test_small_models_match_the_original(fixture: str, build_at_runtime: bool,
                                         request: pytest.FixtureRequest,
                                         tmp_path: pathlib.Path) -> None:
    source = request.getfixturevalue(fixture)
    converter = _convert(source, tmp_path / "out", [2, 5], maximum_cached_engines=2,
                         allow_build_at_runtime=build_at_runtime)
    report = converter.report()
    assert report.segments, "each of these models has compilable segments"
    assert all(e.error <= 1e-4 for s in report.segments for e in s.engines)
    feeds = _feeds(converter, [2, 3, 5])  # 3 was never prebuilt
    expected = eager_outputs(source, feeds)
    _assert_close(session_outputs(tmp_path / "out", feeds), expected, 1e-4, 1e-5)
    _assert_close(eager_outputs(tmp_path / "out", feeds), expected, 1e-4, 1e-5)


def test_text_classifier_keeps_string_ops_native(text_dir: pathlib.Path) -> None:
    converter = trt.Converter(text_dir)
    converter.convert()
    native_ops = {op for ops in converter.report().native.values() for op in ops}
    assert {"StringSplitV2", "LookupTableFindV2", "StringLower"} <= native_ops
    segment_ops = {op for s in converter.report().segments for op in s.ops}
    assert not segment_ops & {"StringSplitV2", "LookupTableFindV2", "StringLower"}


def test_mixed_dtypes_int64_outputs_are_exact(mixed_dir: pathlib.Path,
                                              tmp_path: pathlib.Path) -> None:
    converter = _convert(mixed_dir, tmp_path / "out", [4])
    feeds = _feeds(converter, [4])
    (served,) = session_outputs(tmp_path / "out", feeds)
    (original,) = eager_outputs(mixed_dir, feeds)
    assert served["top"].dtype == np.int64 and served["count"].dtype == np.int32
    np.testing.assert_array_equal(served["top"], original["top"])
    np.testing.assert_array_equal(served["count"], original["count"])


def test_fp16_engines_compute_in_half_within_tolerance(mlp_dir: pathlib.Path,
                                                        tmp_path: pathlib.Path) -> None:
    converter = _convert(mlp_dir, tmp_path / "out", [8], precision_mode="FP16",
                         allow_build_at_runtime=False)
    (segment,) = converter.report().segments
    assert segment.precision == "FP16"
    assert segment.engines and all(e.precision == "FP16" for e in segment.engines)
    # The stated FP16 tolerance: scaled error (|diff| / (1 + max|ref|)) within 2e-2.
    assert all(e.error <= 2e-2 for e in segment.engines)
    assert any(e.error > 0 for e in segment.engines), "half precision should differ a little"
    feeds = _feeds(converter, [8])
    _assert_close(session_outputs(tmp_path / "out", feeds), eager_outputs(mlp_dir, feeds),
                  rtol=2e-2, atol=2e-2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50"])
def test_keras_applications_match_the_original(
        name: str, converted_applications: Callable[[str], ConvertedApplication]) -> None:
    converted = converted_applications(name)
    source, output, converter = converted.source, converted.output, converted.converter
    report = converter.report()
    # The whole network is one large segment; its batch norms are folded into the
    # convolutions first (converter/graph/fold.py): MobileNetV2 165 ops, ResNet50 182.
    assert report.ops_in_segments > 150
    # Whether or not an engine beat native here, its numerics were checked, and
    # only an engine faster than native is kept.
    engines = [e for s in report.segments for e in s.engines]
    assert engines and all(e.error <= 1e-4 for e in engines)
    assert all(e.speedup > 1 for e in engines if e.kept)
    assert all(s.inline for s in report.segments if not any(e.kept for e in s.engines))
    feeds = _feeds(converter, [1, 2])
    expected = eager_outputs(source, feeds)
    _assert_close(session_outputs(output, feeds), expected, 1e-4, 1e-5)
    size = sum(p.stat().st_size for p in output.rglob("*") if p.is_file())
    original = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    assert size <= 1.1 * original, "weights stay out of engines"
