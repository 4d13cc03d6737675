"""Real SavedModels for the converter tests, built once per test session."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest

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


@pytest.fixture(scope="session")
def mobilenet_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return _built(tmp_path_factory, "mobilenet",
                  lambda d: models.keras_application(d, "MobileNetV2"))


@pytest.fixture(scope="session")
def resnet_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return _built(tmp_path_factory, "resnet", lambda d: models.keras_application(d, "ResNet50"))
