"""`Converter`: TF-TRT's `TrtGraphConverterV2` API, compiling segments with XLA, or
handing the whole conversion to TF-TRT itself (backend `tensorrt`)."""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from converter.backends import choose_backend
from converter.backends.device import detect_build_device
from converter.backends.tensorrt import TftrtConversion
from converter.building import build_engines, restrict_engines
from converter.candidates import FROZEN, FROZEN_XLA, XLA
from converter.engines import EngineKey
from converter.errors import (
    ConverterStateError,
    InvalidParameterError,
    UnsupportedModelError,
)
from converter.frozen_signatures import FrozenSignatures, freeze_signatures
from converter.graph.assemble import function_from_flat, replace_segments
from converter.graph.dispatch import ShapeSet
from converter.graph.extract import extract_segment
from converter.graph.inline import FlatGraph, flatten_signature
from converter.graph.segment import Segmentation, find_segments
from converter.graph.support import SupportTable, exclusion_reasons
from converter.inputs import iterate_inputs
from converter.loading import LoadedSignature, load_signature
from converter.params import (
    DEFAULT_WORKSPACE_BYTES,
    TOLERANCE,
    ConversionParams,
    TrtPrecisionMode,
)
from converter.report import ConversionReport, build_report
from converter.saving import save_converted, write_signatures
from converter.segments import ConvertedSegment, convert_segment
from converter.selection import CandidateSpec, Selection, select
from converter.tf1_converter import tf1_conversion


class Converter:
    """Convert a SavedModel signature so its compilable segments run as engines.

    The API is TF-TRT's: `convert()`, optionally `build(input_fn)`, then
    `save(dir)`; `summary()` reports at any point after `convert()`. With the
    tensorrt backend TF-TRT does the conversion (`backends.tensorrt`); the
    checks, the report and the way the output is written stay ours.
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
    ) -> None:
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
        self.device = detect_build_device()
        self._tf1 = tf1_conversion(input_saved_model_dir, input_saved_model_tags,
                                   input_saved_model_signature_key, self.params, self.backend,
                                   self.device)
        self._loaded = None if self._tf1 else load_signature(
            input_saved_model_dir, input_saved_model_tags, input_saved_model_signature_key
        )
        # Dynamic-shape profiles are a TensorRT notion; XLA compiles each shape,
        # so the xla backend accepts `use_dynamic_shape` and its strategy unused.
        self._tftrt = TftrtConversion(
            self._model, self.params, self.backend, self.device,
            use_dynamic_shape=use_dynamic_shape,
            dynamic_shape_profile_strategy=dynamic_shape_profile_strategy,
        ) if self.backend.name == "tensorrt" and self._loaded else None
        self._flat: FlatGraph | None = None
        self._frozen: FrozenSignatures | None = None
        self._selection: Selection | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._segmentation: Segmentation | None = None
        self._segments: list[ConvertedSegment] = []
        self._converted: Any = None
        self._built = False
        self._export_inputs: list[dict[str, np.ndarray]] = []

    @property
    def input_specs(self) -> dict[str, tf.TensorSpec]:
        """The signature's inputs, in the order a tuple from `input_fn` gives them
        (where the signature leaves a shape open, the graph's shape)."""
        if self._tf1 is not None:
            return dict(self._tf1.input_specs)
        return dict(self._model.input_specs)

    def convert(self, calibration_input_fn: Callable[[], Iterable[Any]] | None = None) -> Any:
        """Segment the signature and rewrite each segment to dispatch to an engine.

        Returns the converted ConcreteFunction. `calibration_input_fn` is only for
        INT8 with `use_calibration`, which only the tensorrt backend does."""
        if self._converted is not None:
            raise ConverterStateError("convert() was already called; call it once per Converter.")
        if self._tftrt is not None:
            self._converted = self._tftrt.convert(calibration_input_fn)
            return self._converted
        if self._tf1 is not None:
            self._tf1.convert()
            self._converted = True
            return None
        if calibration_input_fn is not None:
            raise InvalidParameterError(
                "calibration_input_fn is only used for INT8 calibration, which needs "
                "backend='tensorrt'; drop it for FP32 and FP16."
            )
        try:
            flat = flatten_signature(self._model.function)
        except Exception as error:  # Grappler raises bare errors for graphs it cannot import
            raise UnsupportedModelError(
                f"{self._model.directory}: TensorFlow's Grappler could not inline signature "
                f"{self._model.key!r} ({type(error).__name__}: {str(error).splitlines()[0]}), "
                "so it cannot be frozen or segmented. Serve the original unchanged, or "
                "re-export the model with model.export(path, format='tf_saved_model')."
            ) from error
        self._frozen = freeze_signatures(self._model, flat)
        self._flat = self._frozen.flat
        excluded = exclusion_reasons(self._flat, SupportTable(self.device.xla_device_type))
        excluded.update(dict.fromkeys(self._frozen.weights,
                                      "a frozen weight: enters engines as an argument"))
        self._segmentation = find_segments(
            self._flat.graph_def,
            self._flat.op_types,
            excluded,
            self.params.minimum_segment_size,
            self._flat.output_names,
        )
        self._segments = [
            convert_segment(
                extract_segment(self._flat, segment),
                self.params.precision_mode,
                self.params.allow_build_at_runtime,
            )
            for segment in self._segmentation.segments
        ]
        self._converted = self._assemble()
        return self._converted

    def build(self, input_fn: Callable[[], Iterable[Any]]) -> None:
        """Compile an engine per segment and input-shape set seen in `input_fn()`,
        then time the candidates (original, frozen, frozen with the engines that beat
        native) in a TF1 Session on those shapes; save() writes the winner."""
        if input_fn is None:
            raise ConverterStateError(
                "build() needs input_fn: a generator function yielding inputs of the "
                "shapes to prebuild."
            )
        if self._converted is None:
            raise ConverterStateError("build() was called before convert(); call convert() first.")
        if self._built:
            raise NotImplementedError(
                "build() was already called; a Converter builds once. Pass every shape "
                "to one build() call."
            )
        if self._tftrt is not None:
            self._tftrt.build(input_fn)
            self._built = True
            return
        if self._tf1 is not None:
            self._tf1.build([{k: v.numpy() for k, v in feed.items()} for feed in
                             iterate_inputs(input_fn, self._tf1.input_specs, "input_fn")])
            self._built = True
            return
        assert self._flat is not None
        feeds = list(iterate_inputs(input_fn, self._model.input_specs, "input_fn"))
        boundary = [t for s in self._segments for t in s.graph.segment.inputs]
        probe = function_from_flat(self._flat, self._flat.graph_def, self._model.function,
                                   outputs=boundary) if boundary else None
        result = build_engines(
            segments=self._segments,
            probe=probe,
            inputs=feeds,
            maximum_cached_engines=self.params.maximum_cached_engines,
            allow_build_at_runtime=self.params.allow_build_at_runtime,
            keep_slower_engines=self.params.keep_slower_engines,
            tolerance=TOLERANCE,
            key_for=self._engine_key,
        )
        self._export_inputs = result.inputs_to_export
        self._built = True
        self._converted = self._assemble()
        arrays = [{k: v.numpy() for k, v in f.items()} for f in feeds]
        self._selection = self._select(arrays, self._candidates(restricted=False))
        winning = self._engine_wins(self._selection)
        if winning and not self.params.keep_slower_engines:
            # Engines won at some shape sets only: keep them there, run native elsewhere,
            # and measure that as the engine candidate.
            restrict_engines(self._segments, probe, winning, self.params.maximum_cached_engines)
            self._export_inputs = winning
            self._converted = self._assemble()
            self._selection = self._select(arrays, self._candidates(restricted=True))
        if self._selection.choice.chosen != self._xla_name:
            for segment in self._segments:
                segment.drop_engines(f"dropped: {self._selection.choice.chosen} won in the "
                                     "Session path")
            self._export_inputs = []
            self._converted = self._assemble()

    def save(self, output_saved_model_dir: str | pathlib.Path,
             save_gpu_specific_engines: bool = True,
             options: tf.saved_model.SaveOptions | None = None) -> None:
        """Write the converted SavedModel; engines built by `build()` travel inside it
        (unless `save_gpu_specific_engines` is False: TF-TRT's name, any device here).

        The directory appears whole or not at all; an existing one is an error."""
        if self._converted is None:
            raise ConverterStateError("save() was called before convert(); call convert() first.")
        if self._tftrt is not None:
            self._tftrt.save(pathlib.Path(output_saved_model_dir), self.report(),
                             save_gpu_specific_engines, options)
            return
        if self._tf1 is not None:
            self._tf1.save(pathlib.Path(output_saved_model_dir), self.report())
            return
        tolerance = self._tolerance
        save_converted(
            tags=self._model.tags,
            signature_key=self._model.key,
            write=self._writer(options),
            output_dir=pathlib.Path(output_saved_model_dir),
            report=self.report(),
            engine_inputs=self._export_inputs if save_gpu_specific_engines else [],
            expected=[self._expected(feed) for feed in self._export_inputs]
            if save_gpu_specific_engines else [],
            tolerance=tolerance,
            device=self.device,
        )

    def report(self) -> ConversionReport:
        """Everything `summary()` prints, as data."""
        if self._tftrt is not None and self._converted is not None:
            return self._tftrt.report()
        if self._tf1 is not None and self._converted is not None:
            return self._tf1.report(self._built)
        if self._segmentation is None or self._flat is None:
            raise ConverterStateError("report() needs convert() first.")
        return build_report(
            loaded=self._model,
            params=self.params,
            backend=self.backend,
            device=self.device,
            flat=self._flat,
            segmentation=self._segmentation,
            segments=self._segments,
            built=self._built,
            freezing=self._frozen.report if self._frozen else None,
            choice=self._selection.choice if self._selection else None,
        )

    def summary(self, line_length: int = 160, detailed: bool = True,
                print_fn: Callable[[str], Any] | None = None) -> str:
        """Print a TF-TRT-like report (segments, native ops and why, engines and
        timings; with the tensorrt backend, TF-TRT's own table after it) line by
        line through `print_fn` (default `print`); return it too."""
        text = self.report().render(line_length=line_length, detailed=detailed)
        if self._tftrt is not None:
            text += "\n" + "\n".join(self._tftrt.summary_lines(line_length, detailed))
        for line in text.splitlines():
            (print_fn or print)(line)
        return text

    @property
    def _model(self) -> LoadedSignature:
        assert self._loaded is not None, "TF1 exports take the Session path"
        return self._loaded

    def _engine_key(self, segment: ConvertedSegment, shapes: ShapeSet) -> EngineKey:
        return EngineKey(
            segment=segment.graph.segment.name,
            fingerprint=segment.graph.fingerprint,
            shapes=shapes,
            dtypes=tuple(s.dtype.name for s in segment.graph.input_specs),
            precision=segment.precision,
            backend=self.backend.name,
            device=self.device.slug,
            tensorflow=tf.__version__,
        )

    @property
    def _tolerance(self) -> float:
        return max((TOLERANCE[s.precision] for s in self._segments),
                   default=TOLERANCE[TrtPrecisionMode.FP32])

    @property
    def _xla_name(self) -> str:
        assert self._frozen is not None
        return FROZEN_XLA if self._frozen.report.frozen_variables else XLA

    def _signatures(self, with_engines: bool) -> dict[str, Any]:
        assert self._frozen is not None
        signatures = dict(self._frozen.functions)
        if with_engines:
            for key in [self._model.key, *self._frozen.same_as_converted]:
                signatures[key] = self._converted
        return signatures

    def _engine_wins(self, selection: Selection) -> list[dict[str, np.ndarray]]:
        """The measured inputs at which the engine candidate beat every other
        candidate, if it beat them at some but not all."""
        candidates = selection.choice.candidates
        engines = next((c for c in candidates if c.name == self._xla_name), None)
        if engines is None or engines.failure or not max(engines.errors,
                                                         default=0.0) <= self._tolerance:
            return []
        rivals = [c for c in candidates if c is not engines and c.failure is None]
        wins = [i for i, ms in enumerate(engines.latency_ms)
                if all(ms < rival.latency_ms[i] for rival in rivals)]
        return [dict(selection.cases[i]) for i in wins] if 0 < len(wins) < len(
            engines.latency_ms) else []

    def _candidates(self, restricted: bool) -> list[CandidateSpec]:
        assert self._frozen is not None
        candidates = []
        if self._frozen.report.frozen_variables:
            candidates.append(CandidateSpec(
                FROZEN, "read-only variables frozen into constants, native TensorFlow",
                lambda d: write_signatures(self._model, self._signatures(False), d)))
        if self._converted is not self._model.function and any(
                s.runs_engine for s in self._segments):
            where = ("only at the shape sets where they won a first measurement, native "
                     "elsewhere" if restricted else "where build() kept them")
            candidates.append(CandidateSpec(
                self._xla_name, f"frozen weights, XLA engines {where} (weights enter "
                "engines as arguments)",
                lambda d: write_signatures(self._model, self._signatures(True), d)))
        return candidates

    def _select(self, feeds: list[dict[str, np.ndarray]],
                candidates: list[CandidateSpec]) -> Selection:
        assert self._frozen is not None
        self._frozen.restore_state()
        self._workdir = tempfile.TemporaryDirectory(prefix="tftrt-candidates-")
        return select(
            original=self._model.directory,
            candidates=candidates,
            workdir=pathlib.Path(self._workdir.name),
            tags=self._model.tags,
            signature_key=self._model.key,
            feeds=feeds,
            expected_for=self._expected,
            tolerance=self._tolerance,
            forced=self._xla_name if self.params.keep_slower_engines else None,
        )

    def _expected(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self._model.function(**feed).items()}

    def _writer(self, options: tf.saved_model.SaveOptions | None,
                ) -> Callable[[pathlib.Path], object]:
        """How save() fills its directory: the measured winner, or without build()
        (nothing measured) the frozen model with engines where they may build at
        run time, as TF-TRT does."""
        if self._selection is not None:
            source = self._selection.directories[self._selection.choice.chosen]
            return lambda d: shutil.copytree(source, d)
        engines = self._converted is not self._model.function
        assert self._frozen is not None
        if not engines and not self._frozen.report.frozen_variables:
            return lambda d: shutil.copytree(self._model.directory, d)
        self._frozen.restore_state()
        return lambda d: write_signatures(self._model, self._signatures(engines), d, options)

    def _assemble(self) -> Any:
        assert self._flat is not None
        if not self._segments:
            return self._model.function
        # A segment that never runs an engine stays inline, exactly as it was.
        calls = [(s.graph, s.dispatch()) for s in self._segments if s.runs_engine]
        if not calls:
            return self._model.function
        return function_from_flat(self._flat, replace_segments(self._flat, calls),
                                  self._model.function)
