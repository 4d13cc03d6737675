"""The xla backend's conversion: freeze the signature, segment it, compile each
segment with XLA (or rewrite the frozen graph to bfloat16 for BF16, or to int8 for
INT8, calibrated on `calibration_input_fn` or, with use_calibration=False, with the
ranges of the graph's fake-quantization nodes), and keep what beats the original in
a TF1 Session."""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from converter.backend import BackendChoice
from converter.candidates import (
    FROZEN,
    FROZEN_BF16,
    FROZEN_INT8,
    FROZEN_XLA,
    XLA,
    CandidateSpec,
    Selection,
    select,
)
from converter.device import BuildDevice, PrecisionChoice, choose_precision
from converter.errors import InvalidParameterError, UnsupportedModelError
from converter.graph.freeze import (
    captures_as_constants,
    signature_inputs,
    with_constant_weights,
)
from converter.graph.inline import FlatGraph, flatten_signature, function_from_flat
from converter.params import TOLERANCE, ConversionParams, TrtPrecisionMode
from converter.precision.bfloat16 import bfloat16_graph
from converter.precision.fake_quant import (
    FAKE_QUANT_OPS,
    FakeQuantRanges,
    fake_quant_nodes,
    read_ranges,
    within_ranges,
)
from converter.precision.int8 import Int8Rewrite, int8_graph
from converter.report import ConversionReport
from converter.savedmodel.inputs import InputFn, iterate_inputs
from converter.savedmodel.loading import LoadedSignature
from converter.savedmodel.saving import save_converted, write_signatures
from converter.savedmodel.synthetic import batch_input_fn
from converter.serving import warm_child
from converter.xla.assemble import replace_segments
from converter.xla.building import build_engines, restrict_engines
from converter.xla.converted_segment import ConvertedSegment, convert_segment
from converter.xla.dispatch import ShapeSet
from converter.xla.engine_timing import EngineKey
from converter.xla.extract import extract_segment
from converter.xla.frozen_signatures import FrozenSignatures, freeze_signatures
from converter.xla.report import build_report
from converter.xla.segment import Segmentation, find_segments
from converter.xla.support import SupportTable, exclusion_reasons


class XlaConversion:
    """One conversion with XLA-compiled engines; the `Converter` delegates to it
    (it checks the order of calls, this does the work)."""

    def __init__(self, loaded: LoadedSignature, params: ConversionParams,
                 backend: BackendChoice, device: BuildDevice) -> None:
        self._model = loaded
        self.params, self.backend, self.device = params, backend, device
        self._flat: FlatGraph | None = None
        self._frozen: FrozenSignatures | None = None
        self._selection: Selection | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._segmentation: Segmentation | None = None
        self._segments: list[ConvertedSegment] = []
        self._converted: Any = None
        self._built = False
        self._export_inputs: list[dict[str, np.ndarray]] = []
        self.precision: PrecisionChoice = choose_precision(params.precision_mode, device)
        """What the conversion computes in, and why (BF16 falls back to FP32 where the
        bfloat16 rewrite cannot be made)."""
        self._bfloat16: Any = None
        """The converted signature's frozen function in bfloat16 (BF16 only)."""
        self._int8: Any = None
        """The converted signature's frozen function in int8 (INT8 only)."""
        self.int8: Int8Rewrite | str | None = None
        """What the int8 rewrite did, or why it could not be made (INT8 only)."""
        self._fake_quant: FakeQuantRanges | None = None
        """The graph's fake-quant ranges the int8 rewrite used (use_calibration=False)."""

    @property
    def input_specs(self) -> dict[str, tf.TensorSpec]:
        """The signature's inputs (where it leaves a shape open, the graph's shape)."""
        return dict(self._model.input_specs)

    def convert(self, calibration_input_fn: InputFn | None) -> Any:
        """Segment the signature and rewrite each segment to dispatch to an engine;
        the converted ConcreteFunction. For INT8, `calibration_input_fn` gives the
        inputs its ranges are calibrated on."""
        calibration = self._calibration_feeds(calibration_input_fn)
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
        if self.precision.precision == TrtPrecisionMode.BF16:
            self._bfloat16 = self._bfloat16_function(self._flat)
        if self.precision.precision == TrtPrecisionMode.INT8:
            self._int8 = self._int8_function(self._flat, calibration)
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
                # XLA segments compute in half for FP16; with BF16 the bfloat16
                # candidate is the whole graph, and segments stay FP32.
                self.precision.precision,
                self.params.allow_build_at_runtime,
            )
            for segment in self._segmentation.segments
        ]
        self._converted = self._assemble()
        return self._converted

    def build(self, input_fn: InputFn) -> None:
        """Compile an engine per segment and input-shape set, then time the candidates
        in a TF1 Session on those shapes; save() writes the winner."""
        warm_child.warm()  # its imports overlap the work before the timing
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

    def save(self, output_dir: pathlib.Path, report: ConversionReport,
             save_gpu_specific_engines: bool,
             options: tf.saved_model.SaveOptions | None) -> None:
        """Write the converted SavedModel, with the engines built unless
        `save_gpu_specific_engines` is False."""
        tolerance = self._tolerance
        save_converted(
            tags=self._model.tags,
            signature_key=self._model.key,
            write=self._writer(options),
            output_dir=output_dir,
            report=self.report(),
            engine_inputs=self._export_inputs if save_gpu_specific_engines else [],
            expected=[self._expected(feed) for feed in self._export_inputs]
            if save_gpu_specific_engines else [],
            tolerance=tolerance,
            device=self.device,
        )

    def report(self) -> ConversionReport:
        """Segments, native ops and why, engines, freezing and the candidates."""
        assert self._segmentation is not None and self._flat is not None
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
            precision=self.precision,
        )

    def summary_lines(self, line_length: int, detailed: bool) -> list[str]:
        """Nothing beyond the report: it is this backend's whole account."""
        return []

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
    def _engine_precision(self) -> str:
        """What the engine candidate computes in: FP16 if any segment does."""
        precisions = {s.precision for s in self._segments}
        return (TrtPrecisionMode.FP16 if TrtPrecisionMode.FP16 in precisions
                else TrtPrecisionMode.FP32)

    @property
    def _tolerance(self) -> float:
        return TOLERANCE[self._engine_precision]

    def _calibration_feeds(self, calibration_input_fn: InputFn | None,
                           ) -> list[dict[str, np.ndarray]]:
        """The calibration inputs, by signature input name (INT8 with calibration)."""
        int8 = self.precision.precision == TrtPrecisionMode.INT8
        if calibration_input_fn is not None and not (int8 and self.params.use_calibration):
            raise InvalidParameterError(
                "calibration_input_fn is only used for INT8 calibration "
                "(precision_mode='INT8', use_calibration=True); drop it, or ask for INT8."
            )
        if not int8 or not self.params.use_calibration:
            return []  # use_calibration=False: the graph's fake-quant nodes give the ranges
        if calibration_input_fn is None:
            raise InvalidParameterError(
                "precision_mode='INT8' with use_calibration=True calibrates its ranges on "
                "real inputs: pass convert(calibration_input_fn=...), a generator function "
                "yielding inputs like input_fn's (a few hundred real ones)."
            )
        return [{name: tensor.numpy() for name, tensor in feed.items()} for feed in
                iterate_inputs(calibration_input_fn, self._model.input_specs,
                               "calibration_input_fn")]

    def _int8_function(self, flat: FlatGraph, calibration: list[dict[str, np.ndarray]]) -> Any:
        """The converted signature's frozen graph in int8, as a function taking its
        place; None (and the precision falls back to FP32) where it cannot be."""
        # Feeds come by signature input name, in the signature's (sorted) order, which
        # is the flat graph's positional order (its captures follow).
        inputs = signature_inputs(flat)
        graph_def = captures_as_constants(flat)
        ranges = None
        if not self.params.use_calibration and not isinstance(graph_def, str):
            ranges = self._fake_quant_ranges(graph_def)
            # Inputs only for the rewrite's sampling run (whose ranges it replaces) and
            # its check; build() measures the candidate on input_fn's like any other.
            calibration = list(batch_input_fn(self._model.input_specs, [8] * 4)())
        feeds = [dict(zip(inputs, feed.values(), strict=True)) for feed in calibration]
        if isinstance(ranges, FakeQuantRanges):
            feeds = within_ranges(feeds, ranges.ranges)
            self._fake_quant = ranges
        self.int8 = graph_def if isinstance(graph_def, str) else ranges if isinstance(
            ranges, str) else int8_graph(graph_def, inputs, flat.output_names, feeds,
                                         TOLERANCE[TrtPrecisionMode.INT8], ranges)
        if isinstance(self.int8, str):
            self.precision = PrecisionChoice(
                TrtPrecisionMode.FP32, f"{self.precision.reason}; but {self.int8}: FP32 only")
            return None
        quantized = with_constant_weights(flat, self.int8.graph_def)
        return function_from_flat(quantized, quantized.graph_def, self._model.function)

    def _fake_quant_ranges(self, graph_def: tf.compat.v1.GraphDef) -> FakeQuantRanges | str:
        """The ranges the frozen graph's fake-quant nodes fix (use_calibration=False),
        or why they cannot be read; a graph without any is the caller's mistake."""
        if not fake_quant_nodes(graph_def):
            raise InvalidParameterError(
                f"{self._model.directory}: precision_mode='INT8' with use_calibration=False "
                "takes its ranges from the graph's fake-quantization nodes "
                f"({', '.join(sorted(FAKE_QUANT_OPS))}), and signature {self._model.key!r} "
                "has none. Export the quantization-aware-trained model with its fake-quant "
                "nodes, or calibrate: use_calibration=True with "
                "convert(calibration_input_fn=...), a generator function yielding inputs like "
                "input_fn's (a few hundred real ones)."
            )
        return read_ranges(graph_def)

    def _bfloat16_function(self, flat: FlatGraph) -> Any:
        """The converted signature's frozen graph in bfloat16, as a function taking
        its place; None (and the precision falls back to FP32) where it cannot be."""
        rewritten = bfloat16_graph(flat.graph_def, [*flat.input_names, *flat.output_names])
        if isinstance(rewritten, str):
            self.precision = PrecisionChoice(
                TrtPrecisionMode.FP32, f"{self.precision.reason}; but {rewritten}: FP32 only")
            return None
        return function_from_flat(flat, rewritten, self._model.function)

    @property
    def _xla_name(self) -> str:
        assert self._frozen is not None
        return FROZEN_XLA if self._frozen.report.frozen_variables else XLA

    def _signatures(self, with_engines: bool, converted: Any = None) -> dict[str, Any]:
        """Every signature frozen; the converted one (and those that share its graph)
        with its engines, or as `converted` when given."""
        assert self._frozen is not None
        signatures = dict(self._frozen.functions)
        if with_engines or converted is not None:
            for key in [self._model.key, *self._frozen.same_as_converted]:
                signatures[key] = self._converted if converted is None else converted
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
        if self._bfloat16 is not None:
            candidates.append(CandidateSpec(
                FROZEN_BF16, "frozen, computing in bfloat16 through oneDNN, float32 at "
                "the signature",
                lambda d: write_signatures(self._model, self._signatures(False, self._bfloat16), d),
                precision=TrtPrecisionMode.BF16))
        if self._int8 is not None:
            assert isinstance(self.int8, Int8Rewrite)
            kept = (f", {len(self.int8.kept_float)} kept in float32 for accuracy"
                    if self.int8.kept_float else "")
            if self._fake_quant is None:
                ranges = "calibrated on calibration_input_fn"
            else:
                unranged = (f" ({len(self.int8.unranged)} without a range kept in float32)"
                            if self.int8.unranged else "")
                ranges = (f"ranges from the graph's {self._fake_quant.nodes} fake-quantization "
                          f"nodes{unranged}")
            candidates.append(CandidateSpec(
                FROZEN_INT8, f"frozen, {self.int8.quantized} convolutions and matmuls in int8 "
                f"through oneDNN{kept}, {ranges}, float32 at the signature",
                lambda d: write_signatures(self._model, self._signatures(False, self._int8), d),
                precision=TrtPrecisionMode.INT8))
        if self._converted is not self._model.function and any(
                s.runs_engine for s in self._segments):
            where = ("only at the shape sets where they won a first measurement, native "
                     "elsewhere" if restricted else "where build() kept them")
            candidates.append(CandidateSpec(
                self._xla_name, f"frozen weights, XLA engines {where} (weights enter "
                "engines as arguments)",
                lambda d: write_signatures(self._model, self._signatures(True), d),
                precision=self._engine_precision))
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
