"""Shared fixtures for the sidecar tests: a real tiny SavedModel, a manual clock, real mounts."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sidecar.tfserving.warmup import predict_request_from_arrays, write_warmup_file


class ManualClock:
    """A clock the test moves by hand (stands in for time.time / time.monotonic)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def build_tiny_saved_model(path: Path, *, scale: float = 1.0) -> Path:
    """Save a tf.Module with one Variable and a serving_default signature (x[?,2] -> y[?,1])."""
    import tensorflow as tf

    class Tiny(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = tf.Variable([[1.0 * scale], [2.0 * scale]], name="weights")

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.matmul(x, self.weights)}

    module = Tiny()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def tree_listing(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and directory (None) under ``root``."""
    listing: dict[str, bytes | None] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            listing[os.path.relpath(os.path.join(directory, name), root)] = None
        for name in files:
            full = os.path.join(directory, name)
            listing[os.path.relpath(full, root)] = Path(full).read_bytes()
    return listing


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[Path]:
    """Make a directory immutable (chattr +i): even root gets EPERM creating entries in it."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a real tmpfs of ``size`` at ``path`` (needs root, which these tests run as)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def fill_disk(disk: Path, leave: int = 0) -> Path:
    """Write a file on ``disk`` until at most ``leave`` bytes are free (0: until ENOSPC);
    return it (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            stats = os.statvfs(disk)
            room = stats.f_bavail * stats.f_frsize - leave
            if leave and room <= 0:
                break
            os.write(fd, b"\0" * max(min(room, 1 << 20), 4096))
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return filler


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
    import shutil

    path = tmp_path_factory.mktemp("broken") / "model"
    shutil.copytree(tiny_model, path)
    (path / "saved_model.pb").write_bytes(b"not a protobuf at all" * 10)
    return path
