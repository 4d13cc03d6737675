"""Write a converted SavedModel: whole or not at all, servable by TF Serving."""

from __future__ import annotations

import contextlib
import copy
import errno
import pathlib
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.python.saved_model import loader_impl

from converter.device import BuildDevice, engine_namespace
from converter.errors import OutputExistsError
from converter.report import REPORT_FILE, ConversionReport
from converter.savedmodel.engine_cache import engines_dir
from converter.savedmodel.loading import LoadedSignature
from converter.serving.engine_export import export_engines
from durable import staged_directory, write_atomically


@contextlib.contextmanager
def staged_output(output_dir: pathlib.Path, report: ConversionReport) -> Iterator[pathlib.Path]:
    """Where to write a converted SavedModel (a directory the body creates): `report` is
    added as `REPORT_FILE` and the whole flushed and renamed into place, or nothing on any
    error (`durable.staged_directory`). An existing `output_dir` is never overwritten."""
    if output_dir.exists():
        raise OutputExistsError(
            f"{output_dir.absolute()} exists; the converter never overwrites a directory. "
            "Pass a new output directory, or remove the old one first."
        )
    with staged_directory(output_dir) as staging:
        yield staging
        (staging / REPORT_FILE).parent.mkdir(parents=True, exist_ok=True)
        (staging / REPORT_FILE).write_text(report.to_json())


def restore_method_names(directory: pathlib.Path, method_names: Mapping[str, str]) -> None:
    """`tf.saved_model.save` marks every signature `predict`; put back classify/regress."""
    proto = loader_impl.parse_saved_model(str(directory))
    for meta_graph in proto.meta_graphs:
        for key, signature in meta_graph.signature_def.items():
            if key in method_names:
                signature.method_name = method_names[key]
    write_atomically(directory / "saved_model.pb", proto.SerializeToString(deterministic=True))


def copy_input_files(source: pathlib.Path, destination: pathlib.Path) -> None:
    """Keep what the input holds beside its graph that re-saving does not write: every
    file under `assets/` (vocabularies, label maps, which users read beside the model
    whether the graph reads them or not) and `assets.extra/` (e.g. its warmup file)."""
    assets = source / "assets"
    if assets.is_dir():
        shutil.copytree(assets, destination / "assets", dirs_exist_ok=True,
                        copy_function=_copy_unless_present)
    extra = source / "assets.extra"
    if extra.is_dir():
        shutil.copytree(extra, destination / "assets.extra", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("tftrt"))


def _copy_unless_present(source: str, destination: str) -> object:
    # An asset the save wrote is the one the saved graph reads: it stays as written.
    if pathlib.Path(destination).exists():
        return destination
    return shutil.copy2(source, destination)


def _saving_root(loaded: LoadedSignature, functions: Iterable[Any]) -> Any:
    """A root that tracks only what `functions` capture (variables that stay
    variables, tables, assets), so frozen weights are not saved twice; the loaded
    root itself if some captured resource cannot be found in it."""
    objects = list(tf.train.TrackableView(loaded.root).descendants())
    keep: dict[int, Any] = {}
    for function in functions:
        for captured in function.captured_inputs:
            owners = [o for o in objects if any(
                getattr(o, attribute, None) is captured
                for attribute in ("handle", "resource_handle", "asset_path"))]
            if owners:
                keep.update((id(o), o) for o in owners)
            elif captured.dtype == tf.resource:
                return loaded.root
    root = tf.Module()
    root.tftrt_kept = list(keep.values())
    return root


def write_signatures(loaded: LoadedSignature, signatures: Mapping[str, Any],
                     directory: pathlib.Path,
                     options: tf.saved_model.SaveOptions | None = None) -> None:
    """Save `signatures` (every signature of the model) to `directory` with their
    method names and every file of the input's `assets` and `assets.extra`."""
    # Served models need no gradients, and frozen custom-gradient functions
    # (Keras's swish in EfficientNet) capture constants that TF cannot save.
    options = copy.copy(options) if options else tf.saved_model.SaveOptions()
    options.experimental_custom_gradients = False
    try:
        tf.saved_model.save(_saving_root(loaded, signatures.values()), str(directory),
                            signatures=dict(signatures), options=options)
    except tf.errors.ResourceExhaustedError as error:
        # TF reports a full disk as its own error type; callers handle OSError.
        raise OSError(errno.ENOSPC, f"No space left on device saving {directory}: "
                      f"{error.message}") from error
    restore_method_names(directory, loaded.method_names)
    copy_input_files(loaded.directory, directory)


def save_converted(
    *,
    tags: Sequence[str],
    signature_key: str,
    write: Callable[[pathlib.Path], object],
    output_dir: pathlib.Path,
    report: ConversionReport,
    engine_inputs: Sequence[Mapping[str, np.ndarray]],
    expected: Sequence[Mapping[str, np.ndarray]],
    tolerance: float,
    device: BuildDevice,
) -> None:
    """Fill `output_dir` through `write` (which creates the directory it is given),
    add the report and compile the engines for `engine_inputs` (whose outputs must
    match `expected`) in a Session, as TF Serving will run them."""
    with staged_output(output_dir, report) as staging:
        write(staging)
        if engine_inputs:
            export_engines(
                staging, tags, signature_key, engine_inputs, expected, tolerance,
                engines_dir(staging, engine_namespace(device)),
            )
