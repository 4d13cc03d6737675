"""The tensorrt backend: TensorFlow's own TF-TRT (`TrtGraphConverterV2`) converts.

It runs only where TF-TRT can (TensorFlow <= 2.17 built with TensorRT, a GPU;
see `converter.backend`). TF-TRT is imported when a conversion is created, never
at module import, so this module loads on any TensorFlow. Signatures follow
TF-TRT 2.17's `trt_convert.py`.
"""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Iterator
from typing import Any, Final

import tensorflow as tf

from converter.backend import BackendChoice
from converter.device import BuildDevice
from converter.errors import InvalidParameterError
from converter.params import ConversionParams, TrtPrecisionMode
from converter.report import ConversionReport
from converter.savedmodel.inputs import InputFn, iterate_inputs
from converter.savedmodel.loading import LoadedSignature
from converter.savedmodel.saving import copy_input_files, restore_method_names, staged_output
from converter.tensorrt.report import tftrt_report

PROFILE_STRATEGIES: Final = ("Range", "Optimal", "Range+Optimal", "ImplicitBatchModeCompatible")
"""TF-TRT's dynamic-shape profile strategies (`supported_profile_strategies()`), any case."""

SUMMARY_MIN_LINE_LENGTH: Final = 160
"""TF-TRT's `summary()` refuses shorter lines."""


def tftrt_keywords(
    params: ConversionParams,
    *,
    use_dynamic_shape: bool | None = None,
    dynamic_shape_profile_strategy: str | None = None,
) -> dict[str, Any]:
    """`TrtGraphConverterV2`'s keyword arguments for our parameters.

    TF-TRT's own fields map one to one (our `max_workspace_size_bytes` default,
    1 GiB, is passed as given: TF-TRT 2.17 with TensorRT >= 8.4 would default to no
    practical limit). `backend` chose this path; `keep_slower_engines` has no
    TF-TRT meaning and is refused when backends are chosen. The dynamic-shape
    keywords pass through; TF-TRT ignores the strategy without dynamic shapes."""
    if dynamic_shape_profile_strategy is not None and (
        dynamic_shape_profile_strategy.lower() not in {s.lower() for s in PROFILE_STRATEGIES}
    ):
        raise InvalidParameterError(
            f"dynamic_shape_profile_strategy={dynamic_shape_profile_strategy!r} is not a "
            f"TF-TRT profile strategy; use one of {list(PROFILE_STRATEGIES)} or None (Range)."
        )
    return {
        "max_workspace_size_bytes": params.max_workspace_size_bytes,
        "precision_mode": params.precision_mode,
        "minimum_segment_size": params.minimum_segment_size,
        "maximum_cached_engines": params.maximum_cached_engines,
        "use_calibration": params.use_calibration,
        "allow_build_at_runtime": params.allow_build_at_runtime,
        "use_dynamic_shape": use_dynamic_shape,
        "dynamic_shape_profile_strategy": dynamic_shape_profile_strategy,
    }


def needs_calibration(params: ConversionParams) -> bool:
    """TF-TRT's rule: INT8 with `use_calibration` calibrates with real inputs."""
    return params.precision_mode == TrtPrecisionMode.INT8 and params.use_calibration


def check_calibration(params: ConversionParams, calibration_input_fn: InputFn | None) -> None:
    """Raise the ValueError TF-TRT's `convert()` raises for a missing or needless
    `calibration_input_fn`, naming the parameters and the fix."""
    if needs_calibration(params) and calibration_input_fn is None:
        raise InvalidParameterError(
            "precision_mode='INT8' with use_calibration=True needs calibration_input_fn: "
            "pass convert(calibration_input_fn=...) yielding representative inputs, or "
            "set use_calibration=False for a model quantized in training (fake-quant ops "
            "on every tensor)."
        )
    if calibration_input_fn is not None and not needs_calibration(params):
        raise InvalidParameterError(
            "calibration_input_fn is only used when precision_mode='INT8' and "
            f"use_calibration=True (here precision_mode={params.precision_mode!r}, "
            f"use_calibration={params.use_calibration}); drop it."
        )


class TftrtConversion:
    """One conversion done by TF-TRT; the `Converter` delegates to it.

    Our inputs are checked (and named in errors) before TF-TRT sees them, and
    `save()` keeps our guarantees: the output appears whole or not at all, with
    the signature's method name and the conversion report inside."""

    def __init__(
        self,
        loaded: LoadedSignature,
        params: ConversionParams,
        backend: BackendChoice,
        device: BuildDevice,
        *,
        use_dynamic_shape: bool | None = None,
        dynamic_shape_profile_strategy: str | None = None,
    ) -> None:
        keywords = tftrt_keywords(params, use_dynamic_shape=use_dynamic_shape,
                                  dynamic_shape_profile_strategy=dynamic_shape_profile_strategy)
        # Only here: importing TF-TRT is pointless (and logs warnings) where it cannot run.
        from tensorflow.python.compiler.tensorrt import trt_convert

        self._loaded, self._params, self._backend, self._device = loaded, params, backend, device
        self._converter = trt_convert.TrtGraphConverterV2(
            input_saved_model_dir=str(loaded.directory),
            input_saved_model_tags=list(loaded.tags),
            input_saved_model_signature_key=loaded.key,
            **keywords,
        )
        self._function: Any = None
        self._built = False
        self._built_inputs: list[list[list[int]]] = []

    @property
    def input_specs(self) -> dict[str, tf.TensorSpec]:
        """The signature's inputs (where it leaves a shape open, the graph's shape)."""
        return dict(self._loaded.input_specs)

    def convert(self, calibration_input_fn: InputFn | None) -> Any:
        """TF-TRT's `convert()`; returns the converted ConcreteFunction."""
        check_calibration(self._params, calibration_input_fn)
        calibration = (None if calibration_input_fn is None
                       else self._checked(calibration_input_fn, "calibration_input_fn"))
        self._function = self._converter.convert(calibration_input_fn=calibration)
        return self._function

    def build(self, input_fn: InputFn) -> None:
        """TF-TRT's `build()`: run every input so TF-TRT builds its engines."""
        self._converter.build(input_fn=self._checked(input_fn, "input_fn", record=True))
        self._built = True

    def save(self, output_dir: pathlib.Path, report: ConversionReport,
             save_gpu_specific_engines: bool, options: tf.saved_model.SaveOptions | None) -> None:
        """TF-TRT's `save()`, staged so the directory appears whole or not at all; a
        model without engines is copied unchanged, like the xla backend does."""
        with staged_output(output_dir, report) as staging:
            if report.nothing_to_compile:
                shutil.copytree(self._loaded.directory, staging)
            else:
                self._converter.save(str(staging),
                                     save_gpu_specific_engines=save_gpu_specific_engines,
                                     options=options)
                restore_method_names(staging, self._loaded.method_names)
                copy_input_files(self._loaded.directory, staging)

    def report(self) -> ConversionReport:
        """What TF-TRT did, read from the graph it converted."""
        return tftrt_report(
            graph_def=self._function.graph.as_graph_def(),
            loaded=self._loaded,
            params=self._params,
            backend=self._backend,
            device=self._device,
            built=self._built,
            built_inputs=self._built_inputs,
        )

    def summary_lines(self, line_length: int, detailed: bool) -> list[str]:
        """TF-TRT's own summary table (engines, devices, dtypes and shapes)."""
        lines: list[str] = ["TF-TRT's summary:"]
        self._converter.summary(line_length=max(line_length, SUMMARY_MIN_LINE_LENGTH),
                                detailed=detailed, print_fn=lambda *text: lines.append(
                                    " ".join(str(t) for t in text)))
        return lines

    def _checked(self, input_fn: InputFn, where: str, record: bool = False) -> InputFn:
        """`input_fn` as TF-TRT calls it, each item checked against the signature and
        given by name; with `record`, the shape sets are kept for the report."""
        specs = self._loaded.input_specs

        def checked() -> Iterator[dict[str, tf.Tensor]]:
            for feed in iterate_inputs(input_fn, specs, where):
                shapes = [list(feed[name].shape) for name in specs]
                if record and shapes not in self._built_inputs:
                    self._built_inputs.append(shapes)
                yield feed

        return checked
