"""`tftrt demo`: a small Keras model converted, built, saved and served end to end."""

from __future__ import annotations

import pathlib
import time

import numpy as np

DEMO_BATCH_SIZES = (1, 8)


def build_demo_model(directory: pathlib.Path) -> pathlib.Path:
    """Export a small Keras MLP (random weights) as a SavedModel TF Serving can load."""
    import keras

    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input((64,), name="features"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return directory


def run_demo(workdir: pathlib.Path) -> int:
    """Build the demo model in a fresh folder under `workdir`, convert it and check it."""
    from converter.converter import Converter
    from converter.engine_cache import install_engines
    from converter.params import ConversionParams
    from converter.synthetic import batch_input_fn

    run = workdir.absolute() / time.strftime("%Y%m%d-%H%M%S")
    print(f"demo folder: {run}")
    model = build_demo_model(run / "model")
    converter = Converter(model, conversion_params=ConversionParams(
        maximum_cached_engines=len(DEMO_BATCH_SIZES), allow_build_at_runtime=False))
    converter.convert()
    converter.build(batch_input_fn(converter.input_specs, DEMO_BATCH_SIZES))
    converter.save(run / "converted")
    installed = install_engines(run / "converted", run / "engine-cache")
    print(converter.summary(detailed=False))
    print(f"engines installed: {installed.installed} file(s) in {installed.directory}")
    print(f"serve it: TF_XLA_FLAGS='{installed.xla_flags()}' with the model at "
          f"{run / 'converted'}")
    _compare(model, run / "converted")
    return 0


def _compare(original: pathlib.Path, converted: pathlib.Path) -> None:
    import tensorflow as tf

    features = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    outputs = [
        tf.saved_model.load(str(path)).signatures["serving_default"](
            features=tf.constant(features))
        for path in (original, converted)
    ]
    error = max(float(np.max(np.abs(outputs[0][k] - outputs[1][k]))) for k in outputs[0])
    print(f"converted vs original on a batch of 8: max abs difference {error:.2e}")
