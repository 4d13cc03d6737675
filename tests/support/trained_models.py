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
    # A zero pad wider than SAME's before the first convolution, as ResNet has:
    # freezing merges it into the convolution as explicit padding, and the int8
    # rewrite must take it apart again.
    hidden = keras.layers.ZeroPadding2D(2)(hidden)
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


class FakeQuantActivation(keras.layers.Layer):
    """Quantization-aware training's activation node: `FakeQuantWithMinMaxVars` over a
    range held in (non-trainable) variables, which freezing makes constants."""

    def __init__(self, low: float, high: float, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.low, self.high = low, high

    def build(self, input_shape: object) -> None:
        self.range_min = self.add_weight(shape=(), initializer=keras.initializers.Constant(
            self.low), trainable=False, name="min")
        self.range_max = self.add_weight(shape=(), initializer=keras.initializers.Constant(
            self.high), trainable=False, name="max")

    def call(self, inputs: object) -> object:
        import tensorflow as tf

        return tf.quantization.fake_quant_with_min_max_vars(inputs, self.range_min,
                                                            self.range_max)


class FakeQuantConv(keras.layers.Layer):
    """A convolution with bias and relu whose kernel passes through
    `FakeQuantWithMinMaxVarsPerChannel` (per output channel, as QAT quantizes weights)."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, stride: int, **kwargs: object,
                 ) -> None:
        super().__init__(**kwargs)
        self.initial, self.initial_bias, self.stride = kernel, bias, stride

    def build(self, input_shape: object) -> None:
        self.kernel = self.add_weight(shape=self.initial.shape, name="kernel",
                                      initializer=keras.initializers.Constant(self.initial))
        self.bias = self.add_weight(shape=self.initial_bias.shape, name="bias",
                                    initializer=keras.initializers.Constant(self.initial_bias))
        reach = np.abs(self.initial).reshape(-1, self.initial.shape[-1]).max(0)
        self.kernel_min = self.add_weight(shape=reach.shape, name="kernel_min", trainable=False,
                                          initializer=keras.initializers.Constant(-reach))
        self.kernel_max = self.add_weight(shape=reach.shape, name="kernel_max", trainable=False,
                                          initializer=keras.initializers.Constant(reach))

    def call(self, inputs: object) -> object:
        import tensorflow as tf

        kernel = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            self.kernel, self.kernel_min, self.kernel_max, narrow_range=True)
        return tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(
            inputs, kernel, self.stride, "SAME"), self.bias))


class FakeQuantDense(keras.layers.Layer):
    """A dense layer whose kernel passes through `FakeQuantWithMinMaxArgs` (a range
    fixed in the node's attributes, per tensor)."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.initial, self.initial_bias = kernel, bias
        self.reach = float(np.abs(kernel).max())

    def build(self, input_shape: object) -> None:
        self.kernel = self.add_weight(shape=self.initial.shape, name="kernel",
                                      initializer=keras.initializers.Constant(self.initial))
        self.bias = self.add_weight(shape=self.initial_bias.shape, name="bias",
                                    initializer=keras.initializers.Constant(self.initial_bias))

    def call(self, inputs: object) -> object:
        import tensorflow as tf

        kernel = tf.quantization.fake_quant_with_min_max_args(
            self.kernel, -self.reach, self.reach, narrow_range=True)
        return tf.nn.bias_add(tf.matmul(inputs, kernel), self.bias)


def activation_ranges(model: keras.Model, inputs: np.ndarray) -> list[tuple[float, float]]:
    """Each layer's output range on `inputs`, as QAT initializes its fake-quant ranges."""
    probe = keras.Model(model.input, [layer.output for layer in model.layers[1:]])
    return [(min(0.0, float(out.min())), float(out.max())) for out in probe.predict(
        inputs, verbose=0)]


def digits_qat_cnn(directory: pathlib.Path, narrowed: float = 1.0) -> pathlib.Path:
    """A quantization-aware CNN exported at `directory`: float32 images (batch, 16, 16,
    1) -> fake-quant -> two convolutions with relu (per-channel fake-quant kernels,
    fake-quant activations) -> max pooling -> dense (fake-quant
    kernel) -> 10 logits.

    A float CNN is trained, its ranges are read from the training images (weights'
    per channel, activations' per layer), and it is fine-tuned for an epoch with the
    fake-quant nodes in place. `narrowed` below 1 scales every activation range after
    the input by it (and skips the fine-tune), to show that the ranges decide."""
    keras.utils.set_random_seed(0)
    images = digit_images()
    image = keras.Input((SIDE, SIDE, 1), name="image")
    hidden = image
    for filters, stride in ((16, 1), (32, 2)):
        hidden = keras.layers.Conv2D(filters, 3, strides=stride, padding="same",
                                     activation="relu")(hidden)
    float_model = _train(keras.Model(image, keras.layers.Dense(10)(keras.layers.Flatten()(
        keras.layers.MaxPooling2D()(hidden)))), images, 10)
    ranges = activation_ranges(float_model, images[:TRAINED])
    quantized = FakeQuantActivation(0.0, 1.0)(image)
    for index in (1, 2):
        conv = float_model.layers[index]
        kernel, bias = (np.asarray(w) for w in conv.get_weights())
        quantized = FakeQuantConv(kernel, bias, stride=conv.strides[0])(quantized)
        low, high = ranges[index - 1]
        quantized = FakeQuantActivation(low * narrowed, high * narrowed)(quantized)
    quantized = keras.layers.Flatten()(keras.layers.MaxPooling2D()(quantized))
    logits = FakeQuantDense(*(np.asarray(w) for w in float_model.layers[-1].get_weights(
        )))(quantized)
    model = keras.Model(image, logits)
    if narrowed == 1.0:
        _train(model, images, 1)
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return directory
