"""The converted model keeps every file of the input's ``assets/`` (issue 24, item 3h).

Users read files such as label maps beside the model; re-saving writes only the assets
the graph reads, so the others were lost while publishing the original kept them.
"""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf

import converter as trt
from tests.support.models import tf1_classify_regress
from tests.support.session_run import session_outputs

UNREFERENCED = {
    "labels.txt": b"cat\ndog\n\xe9l\xe9phant\n",
    "sub/x.txt": b"nested, read by nobody's graph\n",
    "sub/deeper/weights.bin": bytes(range(256)) * 4,
}


class _Lookup(tf.Module):
    """A weight to freeze, ops to compile, and a table that reads ``assets/vocab.txt``."""

    def __init__(self, vocabulary: pathlib.Path) -> None:
        super().__init__()
        self.weights = tf.Variable(np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4))
        self.table = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
            str(vocabulary), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), default_value=-1)

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x"),
                                  tf.TensorSpec([None], tf.string, name="words")])
    def serve(self, x: tf.Tensor, words: tf.Tensor) -> dict[str, tf.Tensor]:
        hidden = tf.nn.relu(tf.matmul(x, self.weights) + 1.0)
        return {"y": tf.nn.softmax(tf.matmul(hidden, self.weights) * 2.0),
                "ids": self.table.lookup(words)}


def _with_unreferenced_assets(directory: pathlib.Path) -> pathlib.Path:
    for name, data in UNREFERENCED.items():
        (directory / "assets" / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / "assets" / name).write_bytes(data)
    return directory


def _tf2_model(tmp_path: pathlib.Path) -> pathlib.Path:
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_text("red\ngreen\nblue\n")
    module = _Lookup(vocabulary)
    directory = tmp_path / "tf2"
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    assert sorted(p.name for p in (directory / "assets").iterdir()) == ["vocab.txt"]
    return _with_unreferenced_assets(directory)


def _assert_assets_kept(source: pathlib.Path, output: pathlib.Path) -> None:
    files = sorted(p.relative_to(source) for p in (source / "assets").rglob("*") if p.is_file())
    assert len(files) >= len(UNREFERENCED)
    for relative in files:
        kept = output / relative
        assert kept.is_file(), f"{relative} was dropped from {output}"
        assert kept.read_bytes() == (source / relative).read_bytes(), relative


def _feeds() -> list[dict[str, np.ndarray]]:
    return [{"x": np.full((2, 4), 0.5, np.float32), "words": np.array([b"blue", b"pink"])}]


def test_a_tf2_conversion_keeps_every_asset_and_the_table_still_reads_its_own(
        tmp_path: pathlib.Path) -> None:
    source = _tf2_model(tmp_path)
    # Without build(): the frozen model, re-saved. Forced engines after build(): the
    # candidate with XLA segments, re-saved too (the original, copied whole, always kept
    # its assets).
    unbuilt = trt.Converter(source)
    unbuilt.convert()
    unbuilt.save(tmp_path / "frozen")
    built = trt.Converter(source, conversion_params=trt.ConversionParams(
        keep_slower_engines=True, maximum_cached_engines=1))
    built.convert()
    built.build(lambda: iter(_feeds()))
    built.save(tmp_path / "engines")
    freezing = unbuilt.report().freezing
    assert freezing is not None and freezing.frozen_variables
    assert built.report().chosen in {"xla", "frozen+xla"}, built.report().render()
    want = session_outputs(source, _feeds())
    for output in (tmp_path / "frozen", tmp_path / "engines"):
        _assert_assets_kept(source, output)
        got = session_outputs(output, _feeds())
        assert list(got[0]["ids"]) == [2, -1], "the graph still reads its own vocab.txt"
        np.testing.assert_allclose(got[0]["y"], want[0]["y"], rtol=1e-5)


def test_a_tf1_conversion_keeps_every_asset(tmp_path: pathlib.Path) -> None:
    source = _with_unreferenced_assets(tf1_classify_regress(tmp_path / "tf1"))
    converter = trt.Converter(source)
    converter.convert()
    converter.save(tmp_path / "out")  # without build(): the frozen TF1 re-export
    freezing = converter.report().freezing
    assert freezing is not None and freezing.frozen_variables == 2
    _assert_assets_kept(source, tmp_path / "out")
    feed = [{"x": np.array([[1.0], [4.0]], np.float32)}]
    assert session_outputs(tmp_path / "out", feed)[0]["y"].ravel().tolist() == [2.5, 4.0]
