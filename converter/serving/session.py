"""A SavedModel served the way TF Serving serves it: the TF1 Session loader, its own
graph and Session, feeds run by signature.

This is the one place that loads a model that way. Only this path tells whether TF
Serving will load a version (a Keras model saved the wrong way loads with
``tf.saved_model.load`` but not here), so the converter verifies and times its
output through it and the sidecar vets, references and replays through it. A
signature's inputs are read the same way (`graph_input_specs`), from the MetaGraph.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np
import tensorflow as tf

from converter.errors import SavedModelError
from converter.graph.names import op_name
from converter.serving.measuring import scaled_error

DEFAULT_SIGNATURE = "serving_default"
"""The signature a request without a signature name goes to, as in TF Serving."""


def graph_input_specs(meta_graph: Any, key: str) -> dict[str, tf.TensorSpec]:
    """The inputs of signature `key`, sorted by name; where the signature leaves a
    shape open (unknown rank), the shape of the placeholder in the graph."""
    placeholders = {n.name: n for n in meta_graph.graph_def.node if n.op == "Placeholder"}
    specs = {}
    signature = meta_graph.signature_def[key]
    for name in sorted(signature.inputs):
        info = signature.inputs[name]
        shape = tf.TensorShape(info.tensor_shape)
        node = placeholders.get(op_name(info.name))
        if shape.rank is None and node is not None and "shape" in node.attr:
            shape = tf.TensorShape(node.attr["shape"].shape)
        specs[name] = tf.TensorSpec(shape, tf.as_dtype(info.dtype), name)
    return specs


class ServingSession:
    """One SavedModel loaded into its own TF1 Session.

    Use :meth:`load`, as a context manager or closing it yourself. Load and run
    errors are TensorFlow's own (the caller words them for its audience); a
    signature the model lacks is a SavedModelError naming those it has.
    """

    def __init__(self, directory: pathlib.Path, session: Any, meta_graph: Any) -> None:
        self.directory = directory
        """Where the SavedModel was loaded from."""
        self.meta_graph = meta_graph
        """The MetaGraphDef the loader returned."""
        self._session = session

    @classmethod
    def load(cls, directory: pathlib.Path | str,
             tags: Sequence[str] = ("serve",)) -> ServingSession:
        """Load `directory`'s MetaGraph for `tags` as TF Serving does; raises what the
        TF1 loader raises for a broken or partial model."""
        session = tf.compat.v1.Session(graph=tf.Graph())
        try:
            meta_graph = tf.compat.v1.saved_model.loader.load(
                session, list(tags), str(directory))
        except BaseException:
            session.close()
            raise
        return cls(pathlib.Path(directory), session, meta_graph)

    def __enter__(self) -> ServingSession:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the Session; a later run raises RuntimeError."""
        self._session.close()

    def signature_keys(self) -> list[str]:
        """Every signature's name, sorted."""
        return sorted(self.meta_graph.signature_def)

    def signature_def(self, key: str) -> Any:
        """The SignatureDef `key`; SavedModelError naming the signatures there are."""
        signatures = self.meta_graph.signature_def
        if key not in signatures:
            raise SavedModelError(
                f"the SavedModel at {self.directory} has no signature {key!r}; it has "
                f"{sorted(signatures)}: pass one of those")
        return signatures[key]

    def input_specs(self, key: str) -> dict[str, tf.TensorSpec]:
        """Signature `key`'s dense inputs by name, with the shapes the graph's
        placeholders know where the signature leaves them open."""
        self.signature_def(key)
        return graph_input_specs(self.meta_graph, key)

    def caller(self, key: str, feed: Mapping[str, np.ndarray],
               outputs: Sequence[str] | None = None) -> Callable[[], list[np.ndarray]]:
        """A call of signature `key` on `feed` (inputs by name), resolved once so that
        timing it times the Session alone; it returns `outputs` (default: all,
        sorted by name) in that order."""
        signature = self.signature_def(key)
        names = sorted(signature.outputs) if outputs is None else list(outputs)
        fetches = [signature.outputs[name].name for name in names]
        feed_dict = {signature.inputs[name].name: value for name, value in feed.items()}
        session = self._session
        return lambda: [np.asarray(value) for value in session.run(fetches, feed_dict)]

    def run(self, key: str, feed: Mapping[str, np.ndarray],
            outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run signature `key` on `feed` (inputs by name); `outputs` (default: all) by name."""
        signature = self.signature_def(key)
        names = sorted(signature.outputs) if outputs is None else list(outputs)
        return dict(zip(names, self.caller(key, feed, names)(), strict=True))

    def traced_run(self, key: str, feed: Mapping[str, np.ndarray]) -> Any:
        """Run signature `key` once on `feed`, fully traced: the RunMetadata, with the
        graphs the Session ran (`partition_graphs`, after Grappler's fusions) and each
        op's time (`step_stats`)."""
        signature = self.signature_def(key)
        metadata = tf.compat.v1.RunMetadata()
        self._session.run(
            [signature.outputs[name].name for name in sorted(signature.outputs)],
            {signature.inputs[name].name: value for name, value in feed.items()},
            options=tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE,
                                            output_partition_graphs=True),
            run_metadata=metadata)
        return metadata

    def replay_predict_requests(self, requests: Iterable[Any]) -> int:
        """Run each PredictRequest (as a warmup file's predict logs hold them) on its
        signature, the default where it names none; the number run."""
        count = 0
        for request in requests:
            feed = {name: tf.make_ndarray(tensor) for name, tensor in request.inputs.items()}
            self.run(request.model_spec.signature_name or DEFAULT_SIGNATURE, feed)
            count += 1
        return count

    def largest_error(self, key: str, feeds: Sequence[Mapping[str, np.ndarray]],
                      expected: Sequence[Mapping[str, np.ndarray]]) -> float:
        """The largest `scaled_error` of signature `key`'s outputs on `feeds` against
        `expected` (one mapping of outputs by name per feed)."""
        worst = 0.0
        for feed, want in zip(feeds, expected, strict=True):
            names = sorted(want)
            produced = self.caller(key, feed, names)()
            worst = max(worst, scaled_error(produced, [want[name] for name in names]))
        return worst
