"""`tftrt demo`: a small Keras model converted, built, saved and served end to end."""

from __future__ import annotations

import pathlib
import time

import numpy as np

DEMO_BATCH_SIZES = (1, 8)


DEMO_INPUT = "tokens"
DEMO_SEQUENCE = (64, 128)
"""The demo model's input: a sequence of 64 token vectors of width 128."""


def build_demo_model(directory: pathlib.Path) -> pathlib.Path:
    """Export a small Keras model (random weights) as a SavedModel TF Serving can load:
    a transformer-style MLP block (Dense+GELU, LayerNorm, residual) over token
    vectors, then a classifier. XLA fuses its elementwise work, so its engines
    beat native TensorFlow even on a CPU."""
    import keras

    keras.utils.set_random_seed(7)
    tokens = keras.Input(DEMO_SEQUENCE, name=DEMO_INPUT)
    hidden = keras.layers.Dense(256, activation="gelu")(tokens)
    hidden = keras.layers.LayerNormalization()(hidden)
    hidden = keras.layers.Dense(DEMO_SEQUENCE[1], activation="gelu")(hidden)
    hidden = keras.layers.LayerNormalization()(hidden + tokens)
    pooled = keras.layers.GlobalAveragePooling1D()(hidden)
    scores = keras.layers.Dense(10, activation="softmax", name="scores")(pooled)
    keras.Model(tokens, scores).export(str(directory), format="tf_saved_model", verbose=False)
    return directory


def run_demo(workdir: pathlib.Path) -> int:
    """Build the demo model in a fresh folder under `workdir`, convert it and check it."""
    from converter.converter import Converter
    from converter.params import ConversionParams
    from converter.savedmodel.engine_cache import install_engines
    from converter.savedmodel.synthetic import batch_input_fn

    run = workdir.absolute() / time.strftime("%Y%m%d-%H%M%S")
    print(f"demo folder: {run}")
    model = build_demo_model(run / "model")
    converter = Converter(model, conversion_params=ConversionParams(
        maximum_cached_engines=len(DEMO_BATCH_SIZES), allow_build_at_runtime=False))
    converter.convert()
    converter.build(batch_input_fn(converter.input_specs, DEMO_BATCH_SIZES))
    converter.save(run / "converted")
    installed = install_engines(run / "converted", run / "engine-cache")
    converter.summary(line_length=100, detailed=False)
    print(f"engines installed: {installed.installed} file(s) in {installed.directory}")
    print(f"serve it: TF_XLA_FLAGS='{installed.xla_flags()}' with the model at "
          f"{run / 'converted'}")
    _compare(model, run / "converted")
    return 0


def _compare(original: pathlib.Path, converted: pathlib.Path) -> None:
    import tensorflow as tf

    tokens = np.random.default_rng(0).standard_normal((8, *DEMO_SEQUENCE)).astype(np.float32)
    outputs = [
        tf.saved_model.load(str(path)).signatures["serving_default"](
            **{DEMO_INPUT: tf.constant(tokens)})
        for path in (original, converted)
    ]
    error = max(float(np.max(np.abs(outputs[0][k] - outputs[1][k]))) for k in outputs[0])
    print(f"converted vs original on a batch of 8: max abs difference {error:.2e}")
