"""Fixtures every test area shares: the tests' Keras MLP, exported once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.models import keras_mlp


@pytest.fixture(scope="session")
def mlp_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tests' Keras 3 MLP (input x[?,16], 4 outputs) exported for TF Serving, built
    once for the session. Read-only: tests land or publish copies of it; a test that
    changes the files works on its own ``shutil.copytree``."""
    return keras_mlp(tmp_path_factory.mktemp("mlp") / "model")
