"""Shared fixtures of the tap tests: a tiny SavedModel, the TF Serving stand-in, and an
event loop thread the (asyncio) tap runs on while tests call it with blocking stubs."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.standin_models import predict_log, predict_request, save_affine_model

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop running on its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run `coroutine` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@pytest.fixture(scope="session")
def affine_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One saved version of the affine model (with one warmup record), built once."""
    version = tmp_path_factory.mktemp("affine") / "1"
    return save_affine_model(version, warmup=[predict_log(predict_request("m", 2))])


@pytest.fixture()
def copy_version(tmp_path: Path, affine_version: Path) -> Iterator[Any]:
    """Copy the saved version into a model base dir under a given version number."""

    def copy(base: Path, number: int) -> Path:
        staging = base / f".staging-{number}"
        shutil.copytree(affine_version, staging)
        return staging.rename(base / str(number))

    yield copy


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    """An event loop on a thread, for the tap."""
    runner = LoopThread()
    yield runner
    runner.close()
