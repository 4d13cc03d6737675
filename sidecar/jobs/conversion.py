"""The converter as the job sees it: a factory (passed in), the policy's parameters, saving
the converted model into a staging directory."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from converter import ConversionParams, ConversionReport, Converter
from sidecar.config import ModelPolicy

SCRATCH_NAME = ".converted"
"""Where inside the staging directory the converter writes before its files move up."""


class ConverterLike(Protocol):
    """The part of :class:`converter.Converter` a job uses."""

    def convert(self, calibration_input_fn: Callable[[], Iterable[Any]] | None = None) -> Any:
        """Segment the signature and rewrite segments to dispatch to engines (INT8
        calibrates on what ``calibration_input_fn()`` yields)."""
        ...

    def build(self, input_fn: Callable[[], Iterable[Any]]) -> None:
        """Compile and measure engines for every input shape ``input_fn()`` yields."""
        ...

    def save(self, output_saved_model_dir: str | Path) -> None:
        """Write the converted SavedModel (the directory must not exist)."""
        ...

    def report(self) -> ConversionReport:
        """What the conversion did, as data."""
        ...


ConverterFactory = Callable[[Path, Sequence[str], str, ConversionParams], ConverterLike]
"""``factory(saved_model_dir, tags, signature_key, params)`` -> a converter for that model."""


def default_converter_factory(
    saved_model_dir: Path, tags: Sequence[str], signature_key: str, params: ConversionParams
) -> ConverterLike:
    """The real :class:`converter.Converter`."""
    return Converter(saved_model_dir, list(tags), signature_key, params)


def conversion_params(policy: ModelPolicy, precision_mode: str | None = None) -> ConversionParams:
    """The converter's parameters for a model's policy; ``precision_mode`` replaces the
    policy's precision (an INT8 policy that cannot calibrate asks for FP16)."""
    return ConversionParams(
        precision_mode=precision_mode or policy.precision,
        maximum_cached_engines=policy.max_engines,
        minimum_segment_size=policy.minimum_segment_size,
        allow_build_at_runtime=policy.build_at_runtime,
        backend=policy.backend,
    )


def save_into_staging(converter: ConverterLike, staging: Path) -> None:
    """Save the converted model so that it fills the (empty) ``staging`` directory.

    ``Converter.save`` needs a directory that does not exist yet, so it writes
    into a hidden scratch directory inside ``staging``; its entries then move up
    by rename. Everything stays under the staging name, so a crash at any point
    leaves only what the publisher's start-up cleaning removes.
    """
    scratch = staging / SCRATCH_NAME
    converter.save(scratch)
    for entry in sorted(os.listdir(scratch)):
        os.rename(scratch / entry, staging / entry)
    scratch.rmdir()


def engines_kept(report: ConversionReport) -> int:
    """How many engines the converter kept (faster than native, within tolerance)."""
    return sum(1 for segment in report.segments for engine in segment.engines if engine.kept)


def computed_precision(report: ConversionReport) -> str:
    """What the converted model computes in: its measured candidate's precision, else
    what the converter made of the requested precision on this device."""
    if report.choice is not None:
        for candidate in report.choice.candidates:
            if candidate.name == report.choice.chosen:
                return candidate.precision
    return report.precision or str(report.params.get("precision_mode", "FP32")).upper()
