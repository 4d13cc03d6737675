"""The conversion report saved with a model reads back as the report the converter made."""

from __future__ import annotations

import json
import pathlib

import pytest

import converter as trt
from converter.report import REPORT_FILE
from converter.savedmodel.synthetic import batch_input_fn


def test_a_built_models_report_reads_back_equal(mlp_dir: pathlib.Path,
                                                tmp_path: pathlib.Path) -> None:
    converter = trt.Converter(mlp_dir)
    converter.convert()
    converter.build(batch_input_fn(converter.input_specs, [1, 4]))
    converter.save(tmp_path / "out")
    report = converter.report()
    assert report.segments and report.segments[0].engines and report.choice is not None

    assert trt.ConversionReport.read(tmp_path / "out") == report


def test_a_model_without_a_report_has_none(mlp_dir: pathlib.Path) -> None:
    assert trt.ConversionReport.read(mlp_dir) is None


def test_a_report_missing_a_field_or_of_the_wrong_type_names_it(
        mlp_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    converter = trt.Converter(mlp_dir)
    converter.convert()
    document = json.loads(converter.report().to_json())
    path = tmp_path / REPORT_FILE

    del document["device"]
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document))
    with pytest.raises(trt.SavedModelError, match=r"report\.device is missing"):
        trt.ConversionReport.read(tmp_path)

    document["device"] = "cpu"
    document["segments"][0]["engines"] = {"not": "a list"}
    path.write_text(json.dumps(document))
    with pytest.raises(trt.SavedModelError, match=r"report\.segments\[0\]\.engines is dict"):
        trt.ConversionReport.read(tmp_path)

    path.write_text("{not json")
    with pytest.raises(trt.SavedModelError, match="Convert the model again"):
        trt.ConversionReport.read(tmp_path)
