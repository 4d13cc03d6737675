"""Shared fixtures of the recorder tests: a tiny SavedModel, the TF Serving stand-in, and
an event loop thread the (asyncio) recorder runs on while tests call it with blocking stubs."""

from __future__ import annotations

import asyncio
import http.client
import shutil
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from tests.support.standin_models import predict_log, predict_request, save_affine_model

T = TypeVar("T")
PREDICT = "/tensorflow.serving.PredictionService/Predict"


def mirror(port: int | None, batch: int) -> bytes:
    """Send a Predict call of model "m" as Envoy mirrors one; the recorder's (empty) answer."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer: bytes = channel.unary_unary(PREDICT)(
            predict_request("m", batch).SerializeToString(), timeout=10)
        return answer


def post_rest(port: int, path: str, body: bytes, chunked: bool = False,
              timeout: float = 5.0) -> tuple[int, bytes]:
    """POST ``body`` to the REST recorder on ``port`` as Envoy mirrors a call (in two
    chunks with ``chunked``); the answer's status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if chunked:
        connection.request("POST", path, body=iter([body[:5], body[5:]]), encode_chunked=True)
    else:
        connection.request("POST", path, body=body)
    answer = connection.getresponse()
    content = answer.read()
    connection.close()
    return answer.status, content


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
