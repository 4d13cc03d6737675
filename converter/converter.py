"""`Converter`: TF-TRT's `TrtGraphConverterV2` API, compiling segments with XLA, or
handing the whole conversion to TF-TRT itself (backend `tensorrt`); and the
`Conversion` each path implements."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import tensorflow as tf

from converter.backend import choose_backend
from converter.device import BuildDevice, detect_build_device
from converter.errors import ConverterStateError
from converter.params import DEFAULT_WORKSPACE_BYTES, ConversionParams, TrtPrecisionMode
from converter.report import ConversionReport
from converter.savedmodel.inputs import InputFn
from converter.savedmodel.loading import load_signature
from converter.tensorrt.conversion import TftrtConversion
from converter.tf1.conversion import tf1_conversion
from converter.xla.conversion import XlaConversion


class Conversion(Protocol):
    """One model's conversion: convert, optionally build, then save; a report after convert.

    Three paths implement it: XLA engines (`xla.conversion`), TF-TRT itself
    (`tensorrt.conversion`) and the Session path for TF1 exports (`tf1.conversion`).
    The Converter checks the order of the calls."""

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


class Converter:
    """Convert a SavedModel signature so its compilable segments run as engines.

    The API is TF-TRT's: `convert()`, optionally `build(input_fn)`, then
    `save(dir)`; `summary()` reports at any point after `convert()`. This checks
    the order of the calls; a `Conversion` does the work: XLA engines
    (`xla.conversion`), TF-TRT itself with the tensorrt backend (`tensorrt.conversion`),
    or the Session path for TF1 exports (`tf1.conversion`). The checks, the
    report and the way the output is written stay ours.
    """

    def __init__(
        self,
        input_saved_model_dir: str | pathlib.Path,
        input_saved_model_tags: Sequence[str] | None = None,
        input_saved_model_signature_key: str | None = None,
        conversion_params: ConversionParams | None = None,
        *,
        use_dynamic_shape: bool | None = None,
        dynamic_shape_profile_strategy: str | None = None,
        max_workspace_size_bytes: int = DEFAULT_WORKSPACE_BYTES,
        precision_mode: str = TrtPrecisionMode.FP32,
        minimum_segment_size: int = 3,
        maximum_cached_engines: int = 1,
        use_calibration: bool = True,
        allow_build_at_runtime: bool = True,
        build_device: BuildDevice | None = None,
    ) -> None:
        """`build_device` (not TF-TRT's) is the device to convert for and measure on:
        default the one this process has (`detect_build_device()`), whose bfloat16
        support decides what FP16 computes in on a CPU."""
        # As in TF-TRT: `conversion_params`, when given, wins over the keywords.
        self.params = conversion_params or ConversionParams(
            max_workspace_size_bytes=max_workspace_size_bytes,
            precision_mode=precision_mode,
            minimum_segment_size=minimum_segment_size,
            maximum_cached_engines=maximum_cached_engines,
            use_calibration=use_calibration,
            allow_build_at_runtime=allow_build_at_runtime,
        )
        self.backend = choose_backend(self.params)
        self.device = build_device or detect_build_device()
        tf1 = tf1_conversion(input_saved_model_dir, input_saved_model_tags,
                             input_saved_model_signature_key, self.params, self.backend,
                             self.device)
        self._conversion: Conversion
        if tf1 is not None:
            self._conversion = tf1
        else:
            loaded = load_signature(input_saved_model_dir, input_saved_model_tags,
                                    input_saved_model_signature_key)
            # Dynamic-shape profiles are a TensorRT notion; XLA compiles each shape,
            # so the xla backend accepts `use_dynamic_shape` and its strategy unused.
            self._conversion = TftrtConversion(
                loaded, self.params, self.backend, self.device,
                use_dynamic_shape=use_dynamic_shape,
                dynamic_shape_profile_strategy=dynamic_shape_profile_strategy,
            ) if self.backend.name == "tensorrt" else XlaConversion(
                loaded, self.params, self.backend, self.device)
        self._converted = False
        self._built = False

    @property
    def input_specs(self) -> dict[str, tf.TensorSpec]:
        """The signature's inputs, in the order a tuple from `input_fn` gives them
        (where the signature leaves a shape open, the graph's shape)."""
        return dict(self._conversion.input_specs)

    def convert(self, calibration_input_fn: Callable[[], Iterable[Any]] | None = None) -> Any:
        """Segment the signature and rewrite each segment to dispatch to an engine.

        Returns the converted ConcreteFunction. `calibration_input_fn` is only for
        INT8 with `use_calibration` (the inputs its ranges are calibrated on); with
        use_calibration=False the ranges come from the graph's fake-quant nodes."""
        if self._converted:
            raise ConverterStateError("convert() was already called; call it once per Converter.")
        converted = self._conversion.convert(calibration_input_fn)
        self._converted = True
        return converted

    def build(self, input_fn: Callable[[], Iterable[Any]]) -> None:
        """Compile an engine per segment and input-shape set seen in `input_fn()`,
        then time the candidates (original, frozen, frozen with the engines that beat
        native) in a TF1 Session on those shapes; save() writes the winner."""
        if input_fn is None:
            raise ConverterStateError(
                "build() needs input_fn: a generator function yielding inputs of the "
                "shapes to prebuild."
            )
        if not self._converted:
            raise ConverterStateError("build() was called before convert(); call convert() first.")
        if self._built:
            raise NotImplementedError(
                "build() was already called; a Converter builds once. Pass every shape "
                "to one build() call."
            )
        self._conversion.build(input_fn)
        self._built = True

    def save(self, output_saved_model_dir: str | pathlib.Path,
             save_gpu_specific_engines: bool = True,
             options: tf.saved_model.SaveOptions | None = None) -> None:
        """Write the converted SavedModel; engines built by `build()` travel inside it
        (unless `save_gpu_specific_engines` is False: TF-TRT's name, any device here).

        The directory appears whole or not at all; an existing one is an error."""
        if not self._converted:
            raise ConverterStateError("save() was called before convert(); call convert() first.")
        self._conversion.save(pathlib.Path(output_saved_model_dir), self.report(),
                              save_gpu_specific_engines, options)

    def report(self) -> ConversionReport:
        """Everything about the conversion, as data: what `summary()` prints and the
        detail it leaves out (each segment's inputs and outputs, each kept variable);
        `save()` writes it as `conversion.json`."""
        if not self._converted:
            raise ConverterStateError("report() needs convert() first.")
        return self._conversion.report()

    def summary(self, line_length: int = 160, detailed: bool = True,
                print_fn: Callable[[str], Any] | None = None) -> str:
        """Print the conversion on one screen (the choice and the candidates' timings,
        the largest segments with their op counts and, when `detailed`, op types, their
        engines, the ops left native and why; with the tensorrt backend, TF-TRT's own
        table after it) line by line through `print_fn` (default `print`); return it
        too. `report()` holds everything, and its `render()` prints it all."""
        text = self.report().summary(line_length=line_length, detailed=detailed)
        extra = self._conversion.summary_lines(line_length, detailed)
        if extra:
            text += "\n" + "\n".join(extra)
        for line in text.splitlines():
            (print_fn or print)(line)
        return text
