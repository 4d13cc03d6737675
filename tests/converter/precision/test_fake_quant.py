"""INT8 without calibration (TF-TRT's use_calibration=False) on the default backend:
the ranges come from a quantization-aware-trained graph's fake-quant nodes, the
frozen graph is rewritten to oneDNN's int8 kernels with exactly those ranges, and it
answers like the QAT model on held-out images, as TF Serving runs it.

Int8 kernels run only with oneDNN on: those checks run in a child process with it on
(`onednn_child`); the refusals run here."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import pytest

import converter as trt
from tests.support import trained_models
from tests.support.onednn_child import in_onednn_process

MIN_TOP1_AGREEMENT = 0.99
NARROWED = 0.75
"""The narrow model's activation ranges, as a share of the trained model's."""


@pytest.fixture(scope="module")
def qat(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    root = tmp_path_factory.mktemp("qat")
    return {"trained": trained_models.digits_qat_cnn(root / "trained"),
            "narrow": trained_models.digits_qat_cnn(root / "narrow", NARROWED)}


def _conv_ranges(result: dict[str, Any]) -> list[float]:
    """The top of each requantizing convolution's range, in graph order."""
    return [high for name, (_, high) in result["ranges"].items() if "requantize" in name]


def test_the_fake_quant_ranges_decide_the_int8_ranges(qat: dict[str, pathlib.Path]) -> None:
    trained, narrow = (in_onednn_process(
        "tests.converter.precision.int8_checks:fake_quant_ranges", str(qat[kind]))
        for kind in ("trained", "narrow"))
    for result in (trained, narrow):
        assert result["ops"].get("QuantizeV2", 0) >= 1, result["ops"]
        assert result["ops"]["QuantizedConv2DWithBiasAndReluAndRequantize"] == 2, result["ops"]
        # The Session runs oneDNN's int8 kernels, and no fake-quant node is left.
        assert sum(n for op, n in result["ran"].items() if "Quantized" in op) >= 4, result["ran"]
        assert not any(op.startswith("FakeQuant") for op in result["ran"]), result["ran"]
        assert result["unranged"] == [] and result["kept_float"] == [], result
        # Each int8 graph answers like its own QAT graph: the ranges it runs with are
        # the ones that graph was trained (or narrowed) with.
        assert result["agreement"] >= MIN_TOP1_AGREEMENT, result
        assert result["error"] <= trt.TOLERANCE["INT8"], result
        # The image's range [0, 1], as its fake-quant node says, wherever quantized.
        assert [0.0, 1.0] in result["ranges"].values(), result["ranges"]
    wide = _conv_ranges(trained)
    assert len(wide) == 2 and all(high > 1.0 for high in wide), trained["ranges"]
    assert _conv_ranges(narrow) == pytest.approx([high * NARROWED for high in wide], rel=1e-5)


def test_tftrt_int8_recipe_without_calibration(qat: dict[str, pathlib.Path],
                                               tmp_path: pathlib.Path) -> None:
    result = in_onednn_process("tests.converter.precision.int8_checks:tftrt_fake_quant_recipe",
                               str(qat["trained"]), str(tmp_path / "converted"))
    assert result["precision"][0] == "INT8", result["precision"]
    int8 = result["candidates"]["frozen+int8"]
    assert int8["failure"] is None, int8
    assert int8["worst_error"] <= trt.TOLERANCE["INT8"], int8
    assert "ranges from the graph's 6 fake-quantization nodes" in int8["description"], int8
    assert result["agreement"] >= MIN_TOP1_AGREEMENT, result
    if result["chosen"] == "frozen+int8":  # measured: on a CPU without VNNI it may lose
        # The Session TF Serving runs computes in oneDNN's int8 kernels.
        assert result["ran"].get("QuantizeV2", 0) >= 1, result["ran"]
        assert sum(n for op, n in result["ran"].items() if "Quantized" in op) >= 3, result["ran"]


def _cpu() -> trt.BuildDevice:
    return trt.BuildDevice(kind="CPU", model="int8 test", onednn=True)


def test_a_graph_without_fake_quant_nodes_is_refused(tmp_path: pathlib.Path) -> None:
    model = trained_models.digits_sequence_classifier(tmp_path / "float")
    converter = trt.Converter(model, conversion_params=trt.ConversionParams(
        precision_mode="INT8", use_calibration=False), build_device=_cpu())
    with pytest.raises(trt.InvalidParameterError,
                       match=r"has none\. Export the quantization-aware-trained model with "
                             r"its fake-quant nodes, or calibrate: use_calibration=True"):
        converter.convert()


def test_calibration_inputs_without_calibration_are_refused(
        qat: dict[str, pathlib.Path]) -> None:
    def images() -> Any:
        yield {"image": np.zeros((1, trained_models.SIDE, trained_models.SIDE, 1), np.float32)}

    converter = trt.Converter(qat["trained"], conversion_params=trt.ConversionParams(
        precision_mode="INT8", use_calibration=False), build_device=_cpu())
    with pytest.raises(trt.InvalidParameterError, match=r"only used for INT8 calibration "
                       r"\(precision_mode='INT8', use_calibration=True\)"):
        converter.convert(calibration_input_fn=images)
