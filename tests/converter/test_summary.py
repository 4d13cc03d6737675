"""`summary()` fits one screen; `report()` and `conversion.json` keep every detail
(issue 24, item 4a: MobileNetV2's summary listed all 263 inputs of its one segment)."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf

import converter as trt
from converter.report import SUMMARY_REASONS, SUMMARY_SEGMENTS
from tests.converter.conftest import ConvertedApplication

# One worker converts the Keras applications once for every module that reads them
# (tests/converter/conftest.py: converted_applications), under pytest -n.
pytestmark = pytest.mark.xdist_group("keras_applications")

SCREEN = 40
"""Lines a summary may take: one terminal screen."""


def test_a_large_segment_is_summarised_and_reported_in_full(
        converted_applications: Callable[[str], ConvertedApplication],
        tmp_path: pathlib.Path) -> None:
    converter = converted_applications("MobileNetV2").converter
    lines: list[str] = []
    text = converter.summary(line_length=100, print_fn=lines.append)
    assert text.splitlines() == lines
    assert len(lines) <= SCREEN, text

    report = converter.report()
    (segment,) = report.segments
    assert len(segment.inputs) > 100  # the frozen weights enter as arguments
    # The summary: the choice, every candidate's timing, the segment with its op count.
    assert f"Chosen: {report.chosen}: " in text
    assert report.choice is not None
    for candidate in report.choice.candidates:
        (row,) = [line for line in lines if re.match(rf" [* ]{re.escape(candidate.name)} ", line)]
        assert ", ".join(f"{ms:.3f}" for ms in candidate.latency_ms) + " ms" in row
    assert (f"{segment.name}: {sum(segment.ops.values())} ops, {len(segment.inputs)} input(s)"
            in text)
    assert "Conv2D x35" in text  # detailed: the op types
    assert not any(i.split()[0] in text for i in segment.inputs), "no input is listed"
    # Everything is in report().render() and the saved conversion.json.
    full = report.render(line_length=100)
    assert all(f"    in:  {i}" in full for i in segment.inputs)
    converter.save(tmp_path / "out")
    saved = trt.ConversionReport.read(tmp_path / "out")
    assert saved is not None and saved.segments[0].inputs == segment.inputs
    brief = converter.summary(line_length=100, detailed=False, print_fn=lambda _: None)
    assert "Conv2D x35" not in brief and len(brief.splitlines()) < len(lines)


class _Chain(tf.Module):
    """Eight compilable blocks, each cut from the next by a string round trip (no XLA
    kernel), so segmentation finds eight segments."""

    def __init__(self) -> None:
        super().__init__()
        self.weights = [tf.Variable(np.eye(8, dtype=np.float32) * (1 + i / 10))
                        for i in range(8)]

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        for weight in self.weights:
            x = tf.nn.relu(tf.matmul(x, weight) + 0.5) * 0.9
            x = tf.strings.to_number(tf.strings.as_string(x, precision=6))
        return {"y": x}


def test_many_segments_show_the_largest_and_count_the_rest(tmp_path: pathlib.Path) -> None:
    module = _Chain()
    tf.saved_model.save(module, str(tmp_path / "chain"),
                        signatures={"serving_default": module.serve})
    converter = trt.Converter(tmp_path / "chain")
    converter.convert()
    converter.build(lambda: iter([{"x": np.ones((2, 8), np.float32)}]))
    report = converter.report()
    assert len(report.segments) > SUMMARY_SEGMENTS, report.render()
    text = converter.summary(line_length=100, print_fn=lambda _: None)
    assert len(text.splitlines()) <= SCREEN, text
    shown = [s for s in report.segments if f"{s.name}: " in text]
    assert len(shown) == SUMMARY_SEGMENTS
    rest = len(report.segments) - SUMMARY_SEGMENTS
    assert f"... and {rest} smaller segment(s) holding " in text
    # Each op type without an XLA kernel is a reason of its own: the summary counts the rest.
    assert len(report.native) > SUMMARY_REASONS
    assert f": {len(report.native) - SUMMARY_REASONS} other reason(s)" in text
    assert all(f"{s.name}: " in report.render() for s in report.segments)
