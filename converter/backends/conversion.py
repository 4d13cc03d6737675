"""What the `Converter` asks of a conversion, whichever does it: XLA engines
(`xla_conversion`), TF-TRT (`tensorrt`) or the Session path for TF1 exports
(`converter.tf1_converter`). The Converter checks the order of the calls."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import tensorflow as tf

from converter.report import ConversionReport

InputFn = Callable[[], Iterable[Any]]
"""A generator function yielding inputs (TF-TRT's `input_fn`)."""


class Conversion(Protocol):
    """One model's conversion: convert, optionally build, then save; a report after convert."""

    @property
    def input_specs(self) -> dict[str, tf.TensorSpec]:
        """The signature's inputs, in the order a tuple from `input_fn` gives them."""

    def convert(self, calibration_input_fn: InputFn | None) -> Any:
        """Rewrite the model; the converted ConcreteFunction, where there is one."""

    def build(self, input_fn: InputFn) -> None:
        """Build engines for, and measure on, the inputs `input_fn` yields."""

    def save(self, output_dir: pathlib.Path, report: ConversionReport,
             save_gpu_specific_engines: bool,
             options: tf.saved_model.SaveOptions | None) -> None:
        """Write the converted SavedModel, whole or not at all."""

    def report(self) -> ConversionReport:
        """What the conversion did, as data."""

    def summary_lines(self, line_length: int, detailed: bool) -> list[str]:
        """Lines the summary prints after the report (TF-TRT's own table), if any."""
