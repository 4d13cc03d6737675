"""TF-TRT's documented recipes, run unchanged but for the import line."""

from __future__ import annotations

import pathlib

import numpy as np

import converter as trt  # was: from tensorflow.python.compiler.tensorrt import trt_convert as trt
from tests.support.session_run import eager_outputs, session_outputs


def _input_fn():  # TF-TRT's docs: a generator of input tuples
    for batch in (1, 4):
        yield (np.random.default_rng(batch).standard_normal((batch, 16)).astype(np.float32),)


def test_fp32_recipe(mlp_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    converter = trt.TrtGraphConverterV2(input_saved_model_dir=str(mlp_dir))
    converter.convert()
    converter.save(str(tmp_path / "out"))
    feed: dict[str, np.ndarray] = {"x": np.ones((3, 16), np.float32)}
    np.testing.assert_allclose(session_outputs(tmp_path / "out", [feed])[0]["output_0"],
                               eager_outputs(mlp_dir, [feed])[0]["output_0"], rtol=1e-5)


def test_fp16_recipe_with_replace_and_build(mlp_dir: pathlib.Path,
                                            tmp_path: pathlib.Path) -> None:
    params = trt.DEFAULT_TRT_CONVERSION_PARAMS._replace(
        precision_mode=trt.TrtPrecisionMode.FP16, maximum_cached_engines=2)
    converter = trt.TrtGraphConverterV2(input_saved_model_dir=str(mlp_dir),
                                        conversion_params=params)
    converter.convert()
    converter.build(input_fn=_input_fn)
    converter.save(str(tmp_path / "out"))
    lines: list[str] = []
    converter.summary(print_fn=lines.append)
    assert any("precision FP16" in line for line in lines)
    # Numerics like the FP32 sibling's, within FP16's stated tolerance (scaled error 2e-2),
    # at a built batch size and one that was not built.
    for batch in (4, 3):
        feed: dict[str, np.ndarray] = {"x": np.ones((batch, 16), np.float32)}
        got = session_outputs(tmp_path / "out", [feed])[0]["output_0"]
        want = eager_outputs(mlp_dir, [feed])[0]["output_0"]
        assert trt.scaled_error([got], [want]) <= 2e-2, batch


def test_keyword_recipe(mlp_dir: pathlib.Path) -> None:
    converter = trt.TrtGraphConverterV2(
        input_saved_model_dir=str(mlp_dir), precision_mode=trt.TrtPrecisionMode.FP16,
        use_dynamic_shape=True, dynamic_shape_profile_strategy="Optimal",
        allow_build_at_runtime=False)
    assert converter.params.precision_mode == "FP16"
    assert converter.params.allow_build_at_runtime is False


