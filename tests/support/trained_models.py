"""Trained models for accuracy tests, on UCI's handwritten digits (`digits.md`).

Agreement between precisions only means something on trained weights: a random
network's class scores are near-ties that any rounding flips. Both models train in
seconds on 1,500 of the 1,797 images; the rest are held out (`held_out`).
"""

from __future__ import annotations

import gzip
import pathlib
from typing import Final

import keras
import numpy as np

_DIGITS: Final = pathlib.Path(__file__).with_name("digits.csv.gz")

TRAINED: Final = 1500
"""Images used for training; the rest are `held_out`."""

SIDE: Final = 16
"""The CNN's images are upscaled from 8x8 to this side, so its convolutions have
something to see at stride 2."""


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 images as float32 in [0, 1], shape (1797, 8, 8), and their labels."""
    with gzip.open(_DIGITS, "rt") as rows:
        table = np.loadtxt(rows, delimiter=",", dtype=np.int64)
    return (table[:, :64].reshape(-1, 8, 8) / 16.0).astype(np.float32), table[:, 64]


def digit_images() -> np.ndarray:
    """The CNN's inputs: every image upscaled to SIDE x SIDE, one channel."""
    images, _ = digits()
    scale = SIDE // 8
    return np.repeat(np.repeat(images, scale, axis=1), scale, axis=2)[..., None]


def digit_tokens() -> np.ndarray:
    """The sequence classifier's inputs: each image as 64 tokens, its pixels'
    intensities 0..16, read row by row."""
    images, _ = digits()
    return np.rint(images * 16).astype(np.int32).reshape(len(images), 64)


def labels() -> np.ndarray:
    """The digit each image shows."""
    return digits()[1]


def held_out(inputs: np.ndarray) -> np.ndarray:
    """The images no model trained on."""
    return inputs[TRAINED:]


def _train(model: keras.Model, inputs: np.ndarray, epochs: int) -> keras.Model:
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(inputs[:TRAINED], labels()[:TRAINED], epochs=epochs, batch_size=32, verbose=0)
    return model


def digits_cnn(directory: pathlib.Path) -> pathlib.Path:
    """A trained CNN (normalization, zero pad; conv, batch norm, relu twice; pooling;
    dense) exported as a SavedModel at `directory`: float32 images (batch, 16, 16, 1)
    -> 10 logits."""
    keras.utils.set_random_seed(0)
    image = keras.Input((SIDE, SIDE, 1), name="image")
    # Fixed input statistics, as EfficientNet has: captured constants beside the
    # weights, which the int8 rewrite must fold in too.
    hidden = keras.layers.Normalization(mean=0.3, variance=0.15)(image)
    # A zero pad before the first convolution, as ResNet has: freezing merges it into
    # the convolution, and the int8 rewrite must take it apart again.
    hidden = keras.layers.ZeroPadding2D(1)(hidden)
    for filters, stride, padding in ((16, 1, "valid"), (32, 2, "same")):
        hidden = keras.layers.Conv2D(filters, 3, strides=stride, padding=padding)(hidden)
        # Few steps of training: statistics that follow quickly.
        hidden = keras.layers.BatchNormalization(momentum=0.5)(hidden)
        hidden = keras.layers.ReLU()(hidden)
    hidden = keras.layers.GlobalAveragePooling2D()(hidden)
    model = _train(keras.Model(image, keras.layers.Dense(10)(hidden)), digit_images(), 10)
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return directory


def digits_sequence_classifier(directory: pathlib.Path) -> pathlib.Path:
    """A trained text-style classifier exported at `directory`: 64 int32 tokens
    (batch, 64) -> embedding -> two dense layers -> 10 logits."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((64,), dtype="int32", name="tokens")
    hidden = keras.layers.Flatten()(keras.layers.Embedding(17, 8)(tokens))
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    model = _train(keras.Model(tokens, keras.layers.Dense(10)(hidden)), digit_tokens(), 8)
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return directory
