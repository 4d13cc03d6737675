"""INT8 on the default backend (TF-TRT's third recipe): calibrated on real inputs,
rewritten to oneDNN's int8 kernels by Intel Neural Compressor, measured against the
original like every candidate, and accurate on trained models' held-out images.

Int8 kernels run only with oneDNN on, which TensorFlow decides at import: those
checks run in a child process with it on (`onednn_child`); the refusals run here."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import pytest

import converter as trt
from converter.device import choose_precision
from tests.support import trained_models
from tests.support.onednn_child import in_onednn_process

MIN_TOP1_AGREEMENT = 0.99


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    root = tmp_path_factory.mktemp("trained")
    return {"cnn": trained_models.digits_cnn(root / "cnn"),
            "sequence": trained_models.digits_sequence_classifier(root / "sequence")}


@pytest.mark.parametrize("kind", ["cnn", "sequence"])
def test_int8_rewrite_keeps_top1_of_a_trained_model(trained: dict[str, pathlib.Path],
                                                     kind: str) -> None:
    result = in_onednn_process("tests.converter.precision.int8_checks:rewrite_agreement",
                               str(trained[kind]), "cnn" if kind == "cnn" else "tokens")
    if kind == "cnn":
        # Its zero pad merged into a convolution (int8 convolutions cannot take that),
        # and its normalization's statistics are captured constants beside the weights.
        assert result["explicit_padding"] == 1
        assert result["captured_constants"] >= 1
    assert result["quantized"] >= 1, result["ops"]
    assert result["ops"].get("QuantizeV2", 0) >= 1
    assert result["agreement"] >= MIN_TOP1_AGREEMENT, result
    assert result["held_out"] == 1797 - trained_models.TRAINED


def test_tftrt_int8_recipe_runs_on_the_default_backend(trained: dict[str, pathlib.Path],
                                                       tmp_path: pathlib.Path) -> None:
    result = in_onednn_process("tests.converter.precision.int8_checks:tftrt_int8_recipe",
                               str(trained["cnn"]), str(tmp_path / "converted"))
    assert result["precision"][0] == "INT8", result["precision"]
    int8 = result["candidates"]["frozen+int8"]
    assert int8["precision"] == "INT8"
    assert int8["failure"] is None, int8
    assert int8["worst_error"] <= trt.TOLERANCE["INT8"], int8
    # Whichever candidate won (int8 is measured, not assumed faster), the saved model
    # answers like the original as TF Serving runs it.
    assert result["chosen"] in result["candidates"]
    assert result["agreement"] >= MIN_TOP1_AGREEMENT, result


def _cpu(**facts: Any) -> trt.BuildDevice:
    return trt.BuildDevice(kind="CPU", model="int8 test", **facts)


def _images() -> Any:
    yield {"image": np.zeros((1, trained_models.SIDE, trained_models.SIDE, 1), np.float32)}


def test_int8_without_onednn_names_the_variable(trained: dict[str, pathlib.Path]) -> None:
    with pytest.raises(trt.InvalidParameterError,
                       match=r"needs oneDNN, which is off.*TF_ENABLE_ONEDNN_OPTS=1.*TF Serving"):
        trt.Converter(trained["cnn"], conversion_params=trt.ConversionParams(
            precision_mode="INT8"), build_device=_cpu(onednn=False))


def test_int8_on_a_gpu_without_tensorrt_names_the_backend(
        trained: dict[str, pathlib.Path]) -> None:
    with pytest.raises(trt.InvalidParameterError, match="backend='tensorrt'"):
        trt.Converter(trained["cnn"], conversion_params=trt.ConversionParams(
            precision_mode="INT8", backend="xla"),
            build_device=trt.BuildDevice(kind="GPU", model="test gpu"))


@pytest.mark.parametrize(("changes", "calibration", "message"), [
    ({"precision_mode": "INT8"}, None, r"pass convert\(calibration_input_fn=\.\.\.\)"),
    ({"precision_mode": "FP32"}, _images, "only used for INT8 calibration"),
])
def test_calibration_mistakes_are_refused_before_any_work(
        trained: dict[str, pathlib.Path], changes: dict[str, Any], calibration: Any,
        message: str) -> None:
    converter = trt.Converter(trained["cnn"], conversion_params=trt.ConversionParams(
        **changes), build_device=_cpu(onednn=True))
    with pytest.raises(trt.InvalidParameterError, match=message):
        converter.convert(calibration_input_fn=calibration)


def test_the_precision_reason_says_whether_the_cpu_has_int8_dot_products() -> None:
    for int8_dot, says in ((True, "has int8 dot products"), (False, "no VNNI or AMX")):
        choice = choose_precision("INT8", _cpu(onednn=True, int8_dot=int8_dot))
        assert choice.precision == "INT8"
        assert says in choice.reason
