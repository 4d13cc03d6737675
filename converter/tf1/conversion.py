"""`Converter`'s path for TF1 exports: freeze in a Session, measure, save the winner."""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from converter.backend import BackendChoice
from converter.candidates import FROZEN, FROZEN_BF16, CandidateSpec, Selection, select
from converter.device import BuildDevice, PrecisionChoice, choose_precision
from converter.errors import InputFnError, UnsupportedModelError
from converter.params import ConversionParams, TrtPrecisionMode
from converter.precision.bfloat16 import bfloat16_graph
from converter.report import ConversionReport, FreezeReport, report_header
from converter.savedmodel.inputs import InputFn, iterate_inputs
from converter.savedmodel.loading import (
    DEFAULT_TAGS,
    checked_key,
    is_tf1_export,
    read_meta_graph,
)
from converter.savedmodel.saving import copy_input_files, save_converted
from converter.serving import warm_child
from converter.serving.session import graph_input_specs
from converter.tf1.frozen_export import (
    FrozenSessionGraph,
    freeze_session_graph,
    write_frozen_export,
)

TF1_NATIVE = ("a TF1 export: converted through the Session loader, where XLA segments "
              "cannot be cut (they need a TF2 function graph)")


def tf1_conversion(directory: str | pathlib.Path, tags: Sequence[str] | None, key: str | None,
                   params: ConversionParams, backend: BackendChoice,
                   device: BuildDevice) -> Tf1Conversion | None:
    """The Session-path conversion if `directory` is a TF1 export, else None."""
    path = pathlib.Path(directory)
    chosen_tags = tuple(tags) if tags else DEFAULT_TAGS
    proto, meta_graph = read_meta_graph(path, chosen_tags)
    if not is_tf1_export(meta_graph):
        return None
    return Tf1Conversion(path, chosen_tags, checked_key(meta_graph, path, chosen_tags, key),
                         proto, meta_graph, params, backend, device)


class Tf1Conversion:
    """convert/build/save/report for a SavedModel written by TF1's builder."""

    def __init__(self, directory: pathlib.Path, tags: tuple[str, ...], key: str, proto: Any,
                 meta_graph: Any, params: ConversionParams, backend: BackendChoice,
                 device: BuildDevice) -> None:
        self.directory, self.tags, self.key = directory, tags, key
        self._proto, self._meta_graph = proto, meta_graph
        self._params, self._backend, self._device = params, backend, device
        self.input_specs: dict[str, tf.TensorSpec] = graph_input_specs(meta_graph, key)
        self._frozen: FrozenSessionGraph | str | None = None
        self._selection: Selection | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._built = False
        self._precision = choose_precision(params.precision_mode, device)
        self._bfloat16: FrozenSessionGraph | None = None

    def convert(self, calibration_input_fn: InputFn | None) -> None:
        """Freeze the Session graph (or learn why it cannot be). Calibration is
        INT8's, which TF1 exports do not get: it is not used."""
        try:
            self._frozen = freeze_session_graph(self.directory, self.tags, self._proto,
                                                self._meta_graph)
        except Exception as error:  # TF raises many types for graphs it cannot load
            raise UnsupportedModelError(
                f"{self.directory}: this TF1 export could not be loaded and frozen in a TF1 "
                f"Session ({type(error).__name__}: {str(error).splitlines()[0]}). Serve the "
                "original unchanged, or re-export it with tf.saved_model.save."
            ) from error
        if self._precision.precision == TrtPrecisionMode.BF16:
            self._bfloat16 = self._bfloat16_export()

    def _bfloat16_export(self) -> FrozenSessionGraph | None:
        """The frozen export computing in bfloat16; None (the precision falls back to
        FP32) where it cannot be made."""
        if not isinstance(self._frozen, FrozenSessionGraph):
            why = f"the export cannot be frozen ({self._frozen})"
        else:
            infos = [info for signature in self._meta_graph.signature_def.values()
                     for info in [*signature.inputs.values(), *signature.outputs.values()]]
            # A sparse tensor's TensorInfo names its three parts instead of a tensor.
            keep = sorted({name for info in infos for name in (
                [info.name] if info.name else [info.coo_sparse.indices_tensor_name,
                                               info.coo_sparse.values_tensor_name,
                                               info.coo_sparse.dense_shape_tensor_name])
                if name} | ({self._frozen.init_op} if self._frozen.init_op else set()))
            rewritten = bfloat16_graph(self._frozen.graph_def, keep)
            if not isinstance(rewritten, str):
                return dataclasses.replace(self._frozen, graph_def=rewritten)
            why = rewritten
        self._precision = PrecisionChoice(
            TrtPrecisionMode.FP32, f"{self._precision.reason}; but {why}: FP32 only")
        return None

    def build(self, input_fn: InputFn) -> None:
        """Time the original, the frozen export and (BF16) its bfloat16 form on the
        build's shapes; keep the fastest that is accurate."""
        warm_child.warm()  # its imports overlap the work before the timing
        feeds = [{k: v.numpy() for k, v in feed.items()}
                 for feed in iterate_inputs(input_fn, self.input_specs, "input_fn")]
        candidates = []
        if isinstance(self._frozen, FrozenSessionGraph):
            frozen = self._frozen
            candidates.append(CandidateSpec(
                FROZEN, "variables frozen into constants (TF1 convert_variables_to_constants)",
                lambda d: self._write_frozen(frozen, d)))
        if self._bfloat16 is not None:
            bfloat16 = self._bfloat16
            candidates.append(CandidateSpec(
                FROZEN_BF16, "frozen, computing in bfloat16 through oneDNN, float32 at the "
                "signatures", lambda d: self._write_frozen(bfloat16, d),
                precision=TrtPrecisionMode.BF16))
        self._workdir = tempfile.TemporaryDirectory(prefix="tftrt-candidates-")
        self._selection = select(
            original=self.directory, candidates=candidates,
            workdir=pathlib.Path(self._workdir.name), tags=self.tags,
            signature_key=self.key, feeds=feeds, expected_for=None, forced=None)
        failure = self._selection.choice.candidates[0].failure
        if failure is not None:
            raise InputFnError(
                f"input_fn's inputs fail on the original model in a TF1 Session: {failure}. "
                "Yield inputs the model accepts (for a signature over tf.Example, serialized "
                "tf.train.Example strings with the features it parses).")
        self._built = True

    def save(self, output: pathlib.Path, report: ConversionReport,
             save_gpu_specific_engines: bool,
             options: tf.saved_model.SaveOptions | None) -> None:
        """Write the measured winner (without build(): the frozen export, unmeasured).
        There are no engines to leave out, and nothing to save with `options`."""
        if self._selection is not None:
            source = self._selection.directories[self._selection.choice.chosen]

            def write(target: pathlib.Path) -> object:
                return shutil.copytree(source, target)
        elif isinstance(self._frozen, FrozenSessionGraph):
            frozen = self._frozen

            def write(target: pathlib.Path) -> object:
                self._write_frozen(frozen, target)
                return None
        else:
            def write(target: pathlib.Path) -> object:
                return shutil.copytree(self.directory, target)
        save_converted(tags=self.tags, signature_key=self.key, write=write, output_dir=output,
                       report=report, engine_inputs=[], expected=[], tolerance=0.0,
                       device=self._device)

    def report(self) -> ConversionReport:
        """The report: no segments, the freezing, the candidates."""
        ops = collections.Counter(n.op for n in self._meta_graph.graph_def.node)
        frozen = self._frozen
        return ConversionReport(
            **report_header(self.directory, self.key, self._params, self._backend,
                            self._device, self._precision),
            total_ops=sum(ops.values()),
            ops_in_segments=0,
            segments=[],
            native={TF1_NATIVE: dict(ops)},
            built=self._built,
            freezing=FreezeReport(
                frozen_variables=frozen.variables if isinstance(frozen, FrozenSessionGraph)
                else 0,
                frozen_bytes=frozen.frozen_bytes if isinstance(frozen, FrozenSessionGraph)
                else 0,
                kept_variables={},
                unfrozen_signatures={"*": frozen} if isinstance(frozen, str) else {},
            ),
            choice=self._selection.choice if self._selection else None,
        )

    def summary_lines(self, line_length: int, detailed: bool) -> list[str]:
        """Nothing beyond the report: it is this path's whole account."""
        return []

    def _write_frozen(self, frozen: FrozenSessionGraph, target: pathlib.Path) -> None:
        write_frozen_export(frozen, self._meta_graph, self.tags, self.directory, target)
        copy_input_files(self.directory, target)
