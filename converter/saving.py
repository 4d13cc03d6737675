"""Write a converted SavedModel: whole or not at all, servable by TF Serving."""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf
from tensorflow.python.saved_model import loader_impl

from converter.backends.device import BuildDevice, engine_namespace
from converter.engine_cache import engines_dir
from converter.engine_export import export_engines
from converter.files import staged_directory, write_atomically
from converter.loading import LoadedSignature

if TYPE_CHECKING:
    from converter.report import ConversionReport

REPORT_FILE = pathlib.Path("assets.extra", "tftrt", "conversion.json")


def restore_method_names(directory: pathlib.Path, method_names: Mapping[str, str]) -> None:
    """`tf.saved_model.save` marks every signature `predict`; put back classify/regress."""
    proto = loader_impl.parse_saved_model(str(directory))
    for meta_graph in proto.meta_graphs:
        for key, signature in meta_graph.signature_def.items():
            if key in method_names:
                signature.method_name = method_names[key]
    write_atomically(directory / "saved_model.pb", proto.SerializeToString(deterministic=True))


def copy_assets_extra(source: pathlib.Path, destination: pathlib.Path) -> None:
    """Keep the input's `assets.extra` (e.g. its TF Serving warmup file)."""
    extra = source / "assets.extra"
    if extra.is_dir():
        shutil.copytree(extra, destination / "assets.extra", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("tftrt"))


def save_converted(
    *,
    loaded: LoadedSignature,
    converted: Any,
    output_dir: pathlib.Path,
    report: ConversionReport,
    engine_inputs: Sequence[Mapping[str, np.ndarray]],
    tolerance: float,
    device: BuildDevice,
    options: tf.saved_model.SaveOptions | None = None,
) -> None:
    """Save `converted` as the signature `loaded.key` (None: nothing was converted,
    copy the model unchanged), with the report and the prebuilt engines."""
    with staged_directory(output_dir) as staging:
        if converted is None:
            shutil.copytree(loaded.directory, staging)
        else:
            signatures = dict(loaded.root.signatures)
            signatures[loaded.key] = converted
            tf.saved_model.save(loaded.root, str(staging), signatures=signatures,
                                options=options)
            restore_method_names(staging, loaded.method_names)
            copy_assets_extra(loaded.directory, staging)
        (staging / REPORT_FILE).parent.mkdir(parents=True, exist_ok=True)
        (staging / REPORT_FILE).write_text(report.to_json())
        if engine_inputs:
            original = loaded.function
            expected = [
                {k: np.asarray(v) for k, v in original(**feed).items()} for feed in engine_inputs
            ]
            export_engines(
                staging, loaded.tags, loaded.key, engine_inputs, expected, tolerance,
                engines_dir(staging, engine_namespace(device)),
            )
