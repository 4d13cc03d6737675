"""Fixtures every test area shares: the tests' Keras MLP and a tiny SavedModel (each
exported once per session), a broken SavedModel and a manual clock."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sidecar.tfserving.warmup import predict_request_from_arrays, write_warmup_file
from tests.support.clock import ManualClock
from tests.support.models import build_tiny_saved_model, keras_mlp


@pytest.fixture(scope="session")
def mlp_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tests' Keras 3 MLP (input x[?,16], 4 outputs) exported for TF Serving, built
    once for the session. Read-only: tests land or publish copies of it; a test that
    changes the files works on its own ``shutil.copytree``."""
    return keras_mlp(tmp_path_factory.mktemp("mlp") / "model")


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock starting at 1000 s."""
    return ManualClock()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SavedModel with a warmup file (read-only for tests: copy before changing)."""
    path = build_tiny_saved_model(tmp_path_factory.mktemp("tiny") / "model")
    request = predict_request_from_arrays("tiny", {"x": np.ones((2, 2), np.float32)})
    write_warmup_file(path, [request])
    return path


@pytest.fixture(scope="session")
def broken_model(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """A SavedModel whose saved_model.pb is garbage (with a warmup file)."""
    path = tmp_path_factory.mktemp("broken") / "model"
    shutil.copytree(tiny_model, path)
    (path / "saved_model.pb").write_bytes(b"not a protobuf at all" * 10)
    return path


@pytest.fixture
def one_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sidecar processes a test starts build each version once, at its first served
    number (``serve_original_first`` off): what the tests written for that exercise; the
    original served first has tests of its own (``test_original_first.py`` files, the
    crash test in tests/e2e/test_sidecar_crash.py)."""
    monkeypatch.setenv("TFTRT_SIDECAR_SERVE_ORIGINAL_FIRST", "false")
