"""A SavedModel loaded the way TF Serving loads it: the TF1 loader, its own graph and Session.

Only this path tells whether TF Serving will load a version (a Keras model saved
the wrong way loads with ``tf.saved_model.load`` but not here), so the job uses
it to vet the original, to compute the reference outputs, and to replay the
warmup inputs on the staged version before it is renamed into place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from converter import graph_input_specs
from sidecar.jobs.errors import ModelLoadError, ReplayError, SignatureError

Arrays = dict[str, np.ndarray]
"""Tensors by name (a signature's inputs, or its outputs)."""


@dataclass(frozen=True)
class SignatureSpec:
    """One signature as the TF1 loader sees it."""

    key: str
    """The signature's name."""

    method_name: str
    """``tensorflow/serving/predict``, ``.../classify`` or ``.../regress``."""

    inputs: Mapping[str, tf.TensorSpec]
    """Dense inputs by name, sorted by name (unknown sizes are None)."""

    outputs: tuple[str, ...]
    """Output names, sorted."""


class SessionModel:
    """A SavedModel loaded into a TF1 Session; use :meth:`open` as a context manager."""

    def __init__(self, directory: Path, session: Any, meta_graph: Any) -> None:
        self._directory = directory
        self._session = session
        self._meta_graph = meta_graph

    @classmethod
    @contextmanager
    def open(cls, directory: Path, tags: Sequence[str]) -> Iterator[SessionModel]:
        """Load ``directory`` with ``tags``; raise ModelLoadError if TF Serving could not."""
        session = tf.compat.v1.Session(graph=tf.Graph())
        try:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, list(tags), str(directory))
        except Exception as exc:  # TF raises many types for a broken or partial model
            session.close()
            raise ModelLoadError(
                f"the SavedModel does not load through the TF1 Session loader, as TF Serving "
                f"loads it: {type(exc).__name__}: {_first_line(exc)}",
                where=str(directory),
                fix="export the model again (Keras 3: model.export(path, "
                'format="tf_saved_model")) and land it under a new version number',
            ) from exc
        try:
            yield cls(directory, session, meta_graph)
        finally:
            session.close()

    def signature_keys(self) -> list[str]:
        """Every signature's name, sorted."""
        return sorted(self._meta_graph.signature_def)

    def signature(self, key: str) -> SignatureSpec:
        """The signature ``key``; raise SignatureError if it is missing or not dense."""
        signatures = self._meta_graph.signature_def
        if key not in signatures:
            raise SignatureError(
                f"the model has no signature {key!r}; it has {sorted(signatures)}",
                where=str(self._directory),
                fix=f"export the model with a {key!r} signature",
            )
        signature = signatures[key]
        # Where the signature leaves a shape open, the graph's placeholder may know it.
        graph_specs = graph_input_specs(self._meta_graph, key)
        inputs: dict[str, tf.TensorSpec] = {}
        for name in sorted(signature.inputs):
            info = signature.inputs[name]
            if not info.name:
                raise SignatureError(
                    f"input {name!r} of signature {key!r} is sparse or composite; only dense "
                    "inputs can be replayed",
                    where=str(self._directory),
                    fix="serve dense inputs, or convert another signature",
                )
            inputs[name] = graph_specs[name]
        return SignatureSpec(
            key=key,
            method_name=str(signature.method_name),
            inputs=inputs,
            outputs=tuple(sorted(signature.outputs)),
        )

    def run(self, key: str, inputs: Sequence[Mapping[str, np.ndarray]]) -> list[Arrays]:
        """Feed each of ``inputs`` to signature ``key``; its outputs, in order.

        Raises ReplayError naming the input that failed.
        """
        signature = self._meta_graph.signature_def[key]
        names = sorted(signature.outputs)
        fetches = [signature.outputs[name].name for name in names]
        results: list[Arrays] = []
        for position, feed in enumerate(inputs):
            try:
                feed_dict = {signature.inputs[name].name: value for name, value in feed.items()}
                values = self._session.run(fetches, feed_dict)
            except (tf.errors.OpError, KeyError, ValueError, TypeError) as exc:
                shapes = {name: list(np.shape(value)) for name, value in feed.items()}
                raise ReplayError(
                    f"replay input {position + 1} (shapes {shapes}) fails on signature {key!r}: "
                    f"{type(exc).__name__}: {_first_line(exc)}",
                    where=str(self._directory),
                    fix="check the shapes recorded for this model, or its warmup file",
                ) from exc
            results.append(dict(zip(names, (np.asarray(v) for v in values), strict=True)))
        return results


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
