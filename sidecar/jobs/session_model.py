"""A SavedModel loaded the way TF Serving loads it: the TF1 loader, its own graph and Session.

The loading and running is the converter's ``ServingSession`` (the one runner for
"served the way TF Serving serves it"); this wraps it in the job's errors. The job
uses it to vet the original, to compute the reference outputs, and to replay the
warmup inputs on the staged version before it is renamed into place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from converter import ServingSession
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

    def __init__(self, directory: Path, served: ServingSession) -> None:
        self._directory = directory
        self._served = served

    @classmethod
    @contextmanager
    def open(cls, directory: Path, tags: Sequence[str]) -> Iterator[SessionModel]:
        """Load ``directory`` with ``tags``; raise ModelLoadError if TF Serving could not."""
        try:
            served = ServingSession.load(directory, tags)
        except Exception as exc:  # TF raises many types for a broken or partial model
            raise ModelLoadError(
                f"the SavedModel does not load through the TF1 Session loader, as TF Serving "
                f"loads it: {type(exc).__name__}: {_first_line(exc)}",
                where=str(directory),
                fix="export the model again (Keras 3: model.export(path, "
                'format="tf_saved_model")) and land it under a new version number',
            ) from exc
        with served:
            yield cls(directory, served)

    def signature_keys(self) -> list[str]:
        """Every signature's name, sorted."""
        return self._served.signature_keys()

    def signature(self, key: str) -> SignatureSpec:
        """The signature ``key``; raise SignatureError if it is missing or not dense."""
        signatures = self._served.meta_graph.signature_def
        if key not in signatures:
            raise SignatureError(
                f"the model has no signature {key!r}; it has {sorted(signatures)}",
                where=str(self._directory),
                fix=f"export the model with a {key!r} signature",
            )
        signature = signatures[key]
        # Where the signature leaves a shape open, the graph's placeholder may know it.
        graph_specs = self._served.input_specs(key)
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
        results: list[Arrays] = []
        for position, feed in enumerate(inputs):
            try:
                results.append(self._served.run(key, feed))
            except (tf.errors.OpError, KeyError, ValueError, TypeError) as exc:
                shapes = {name: list(np.shape(value)) for name, value in feed.items()}
                raise ReplayError(
                    f"replay input {position + 1} (shapes {shapes}) fails on signature {key!r}: "
                    f"{type(exc).__name__}: {_first_line(exc)}",
                    where=str(self._directory),
                    fix="check the shapes recorded for this model, or its warmup file",
                ) from exc
        return results


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
