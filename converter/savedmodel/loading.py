"""Load the input SavedModel and find the signature to convert."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.saved_model import loader_impl

from converter.errors import SavedModelError

DEFAULT_TAGS = ("serve",)
DEFAULT_SIGNATURE_KEY = "serving_default"


@dataclasses.dataclass
class LoadedSignature:
    """A loaded SavedModel and the signature that will be converted."""

    directory: pathlib.Path
    tags: tuple[str, ...]
    key: str
    root: Any
    """The object `tf.saved_model.load` returned; saving it keeps every variable."""
    function: Any
    """The signature's ConcreteFunction."""
    input_specs: dict[str, tf.TensorSpec]
    """Inputs by name, in the order positional inputs are given (sorted by name)."""
    method_names: dict[str, str]
    """Every signature's method name, to restore after re-saving."""


def _parse(directory: pathlib.Path) -> saved_model_pb2.SavedModel:
    if not directory.is_dir():
        raise SavedModelError(
            f"{directory} is not a directory; pass the directory that holds saved_model.pb."
        )
    if not tf.saved_model.contains_saved_model(str(directory)):
        raise SavedModelError(
            f"{directory} is not a SavedModel: it has no saved_model.pb or saved_model.pbtxt. "
            "Export one with `model.export(path)` or `tf.saved_model.save`."
        )
    try:
        return loader_impl.parse_saved_model(str(directory))
    except OSError as error:
        raise SavedModelError(f"{directory}: saved_model.pb cannot be read: {error}") from error


def _meta_graph(
    proto: saved_model_pb2.SavedModel, directory: pathlib.Path, tags: tuple[str, ...]
) -> Any:
    for meta_graph in proto.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(tags):
            return meta_graph
    available = [sorted(m.meta_info_def.tags) for m in proto.meta_graphs]
    raise SavedModelError(
        f"{directory} has no MetaGraph with tags {sorted(tags)}; its tag sets are "
        f"{available}. Pass one of them as input_saved_model_tags."
    )


def is_tf1_export(meta_graph: Any) -> bool:
    """Whether a MetaGraph was written by TF1's SavedModel builder (it has no TF2
    object graph): such models are converted through the Session loader."""
    return not meta_graph.object_graph_def.nodes


def read_meta_graph(
    directory: str | pathlib.Path, tags: Sequence[str] | None = None
) -> tuple[saved_model_pb2.SavedModel, Any]:
    """The parsed SavedModel and its MetaGraph tagged `tags` (default "serve")."""
    path = pathlib.Path(directory)
    proto = _parse(path)
    return proto, _meta_graph(proto, path, tuple(tags) if tags else DEFAULT_TAGS)


def checked_key(meta_graph: Any, path: pathlib.Path, tags: Sequence[str],
                key: str | None) -> str:
    """`key` (default "serving_default") if the MetaGraph has that signature."""
    chosen = key or DEFAULT_SIGNATURE_KEY
    if chosen not in meta_graph.signature_def:
        raise SavedModelError(
            f"{path} has no signature {chosen!r} under tags {sorted(tags)}; "
            f"its signatures are {sorted(meta_graph.signature_def)}. Pass one of them as "
            "input_saved_model_signature_key."
        )
    return chosen


def load_signature(
    directory: str | pathlib.Path,
    tags: Sequence[str] | None = None,
    key: str | None = None,
) -> LoadedSignature:
    """Load `directory` and pick the signature `key` of the MetaGraph tagged `tags`."""
    path = pathlib.Path(directory)
    chosen_tags = tuple(tags) if tags else DEFAULT_TAGS
    _, meta_graph = read_meta_graph(path, chosen_tags)
    chosen_key = checked_key(meta_graph, path, chosen_tags, key)
    try:
        root = tf.saved_model.load(str(path), tags=list(chosen_tags))
    except Exception as error:  # TF raises many types for a broken model
        raise SavedModelError(f"{path} failed to load: {error}") from error
    function = root.signatures[chosen_key]
    specs = function.structured_input_signature[1]
    return LoadedSignature(
        directory=path,
        tags=chosen_tags,
        key=chosen_key,
        root=root,
        function=function,
        input_specs={name: specs[name] for name in sorted(specs)},
        method_names={k: s.method_name for k, s in meta_graph.signature_def.items()},
    )
