"""Test-only: run a SavedModel the way TF Serving does, through the TF1 Session loader."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from converter import ServingSession


def session_outputs(
    model_dir: pathlib.Path,
    feeds: Sequence[Mapping[str, np.ndarray]],
    signature_key: str = "serving_default",
) -> list[dict[str, np.ndarray]]:
    """Load `model_dir` as TF Serving does (the converter's `ServingSession`) and run
    each feed."""
    with ServingSession.load(model_dir) as served:
        return [served.run(signature_key, feed) for feed in feeds]


def eager_outputs(
    model_dir: pathlib.Path,
    feeds: Sequence[Mapping[str, np.ndarray]],
    signature_key: str = "serving_default",
) -> list[dict[str, np.ndarray]]:
    """Load `model_dir` with `tf.saved_model.load` and run each feed through the signature."""
    function = tf.saved_model.load(str(model_dir)).signatures[signature_key]
    return [
        {k: v.numpy() for k, v in function(**{n: tf.constant(a) for n, a in feed.items()}).items()}
        for feed in feeds
    ]


def method_names(model_dir: pathlib.Path) -> dict[str, str]:
    """Every signature's method name as saved_model.pb records it (TF's own
    `__saved_model_init_op` left out)."""
    from tensorflow.python.saved_model import loader_impl

    proto = loader_impl.parse_saved_model(str(model_dir))
    return {k: s.method_name for k, s in proto.meta_graphs[0].signature_def.items()
            if not k.startswith("__")}
