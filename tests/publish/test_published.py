"""The serving-base reader (sidecar.publish.published) on real warmup files and reports."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from converter import ConversionReport
from converter.report import REPORT_FILE
from sidecar.publish.published import PublishedModels
from sidecar.shapes import ShapeSet, TensorSpec
from sidecar.tfserving.warmup import predict_request_from_arrays, write_warmup_file


def _version(serving: Path, served: int, batches: list[int],
             report: str | None) -> Path:
    path = serving / "m" / str(served)
    path.mkdir(parents=True)
    write_warmup_file(path, [
        predict_request_from_arrays("m", {"x": np.ones((size, 2), np.float32)})
        for size in batches
    ])
    if report is not None:
        (path / REPORT_FILE).parent.mkdir(parents=True)
        (path / REPORT_FILE).write_text(report)
    return path


def _batch(size: int) -> ShapeSet:
    return ShapeSet.of({"x": TensorSpec("DT_FLOAT", (size, 2))})


def _report(built: bool) -> str:
    return ConversionReport(
        model="m", signature="serving_default", backend="xla", backend_reason="auto: test",
        device="cpu-test", engine_namespace="ns", params={}, total_ops=3, ops_in_segments=0,
        segments=[], native={}, built=built).to_json()


def test_a_built_version_is_built_for_its_warmup_shapes(tmp_path: Path) -> None:
    _version(tmp_path, 1000, [1, 8, 1], _report(built=True))
    found = PublishedModels(tmp_path).version("m", 1000)
    assert found is not None
    assert (found.backend, found.backend_reason, found.device) == ("xla", "auto: test",
                                                                   "cpu-test")
    assert found.warmed_up == (("serving_default", _batch(1)), ("serving_default", _batch(8)))
    assert found.prebuilt_for("serving_default") == (_batch(1), _batch(8))


def test_a_version_without_a_build_or_a_report_is_built_for_nothing(tmp_path: Path) -> None:
    _version(tmp_path, 1000, [4], _report(built=False))
    _version(tmp_path, 2000, [4], None)
    published = PublishedModels(tmp_path)
    for served in (1000, 2000):
        found = published.version("m", served)
        assert found is not None
        assert found.warmed_up_for("serving_default") == (_batch(4),)
        assert found.prebuilt == ()
        assert found.backend == ("xla" if served == 1000 else "")


def test_a_report_that_is_no_report_is_logged_and_read_as_none(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _version(tmp_path, 1000, [2], '{"built": true, "segments": []}')
    with caplog.at_level(logging.WARNING, logger="sidecar.publish.published"):
        found = PublishedModels(tmp_path).version("m", 1000)
    assert found is not None and found.prebuilt == () and found.engines == ()
    assert found.warmed_up_for("serving_default") == (_batch(2),)
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot read the conversion report of {path}: {path / REPORT_FILE} is not a "
        "readable conversion report: report.model is missing. Convert the model again to "
        "rewrite it, or remove the file."]
