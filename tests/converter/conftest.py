"""Real SavedModels for the converter tests, built once per test session; the large
Keras applications also converted once, for every test that reads a conversion."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable

import pytest

import converter as trt
from converter.savedmodel.synthetic import batch_input_fn
from tests.converter import corpus
from tests.support import models


def _built(factory: pytest.TempPathFactory, name: str,
           build: Callable[[pathlib.Path], pathlib.Path]) -> pathlib.Path:
    return build(factory.mktemp(name) / "model")


@pytest.fixture(scope="session")
def mlp_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return _built(tmp_path_factory, "mlp", models.keras_mlp)


@pytest.fixture(scope="session")
def text_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return _built(tmp_path_factory, "text", models.text_classifier)


@pytest.fixture(scope="session")
def loop_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return _built(tmp_path_factory, "loop", models.while_cond_model)


@pytest.fixture(scope="session")
def mixed_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return _built(tmp_path_factory, "mixed", models.mixed_dtype_model)


@pytest.fixture(scope="session")
def tf1_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return _built(tmp_path_factory, "tf1", models.tf1_classify_regress)


@dataclasses.dataclass(frozen=True)
class ConvertedApplication:
    """A Keras application converted with defaults, except that engines never build
    at run time (what a serving build sets), and built for batches 1 and 8."""

    source: pathlib.Path
    output: pathlib.Path
    """Where it was saved."""
    converter: trt.Converter


@pytest.fixture(scope="session")
def converted_applications(
        tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], ConvertedApplication]:
    """A Keras application (`corpus.keras_application`'s names) exported and converted
    on first use: converting ResNet50 takes a minute, and the tests of its measured
    choice, its numerics and its summary all read the same conversion (none of them
    changes it)."""
    done: dict[str, ConvertedApplication] = {}

    def get(name: str) -> ConvertedApplication:
        if name not in done:
            source = _built(tmp_path_factory, name.lower(),
                            lambda d: corpus.keras_application(d, name))
            converter = trt.Converter(source, conversion_params=trt.ConversionParams(
                allow_build_at_runtime=False))
            converter.convert()
            converter.build(batch_input_fn(converter.input_specs, [1, 8]))
            output = tmp_path_factory.mktemp(f"{name.lower()}-converted") / "model"
            converter.save(output)
            done[name] = ConvertedApplication(source, output, converter)
        return done[name]
    return get
