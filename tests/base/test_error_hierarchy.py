"""The sidecar's one error hierarchy: every error it raises on purpose is a SidecarError, and
its branches decide what the admin API answers and whether a job is retried."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import PurePosixPath

import grpc

import sidecar
from sidecar.admin.status import message_for, status_for
from sidecar.base.errors import SidecarError, StorageError, UserError, echo
from sidecar.jobs.errors import ModelCheckError, ReplayError, VerificationError
from sidecar.recorder.errors import TapError, TapStartError
from sidecar.shapes import ShapeStoreCorruptError, ShapeStoreError, ShapeStoreWriteError


def _error_modules() -> list[str]:
    names = [info.name for info in pkgutil.walk_packages(sidecar.__path__, "sidecar.")]
    return ["sidecar.base.errors", *(name for name in names if name.endswith(".errors"))]


def test_every_error_class_of_the_sidecar_is_a_sidecar_error() -> None:
    modules = _error_modules()
    expected = {"sidecar.recorder.errors", "sidecar.shapes.errors", "sidecar.jobs.errors"}
    assert expected <= set(modules)
    for name in modules:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException):
                assert issubclass(cls, SidecarError), f"{name}.{cls.__name__}"


def test_the_tap_and_the_shape_store_answer_as_their_branch_says() -> None:
    corrupt = ShapeStoreCorruptError("state/shapes.db is not a usable shape store; move it aside")
    assert status_for(corrupt) is grpc.StatusCode.DATA_LOSS
    assert message_for(corrupt) == str(corrupt)  # its own words, not "internal error: ..."
    assert corrupt.retryable and isinstance(corrupt, StorageError)
    assert status_for(ShapeStoreWriteError("disk full")) is grpc.StatusCode.UNAVAILABLE
    taken = TapStartError("the recorder cannot listen on 127.0.0.1:8702")
    assert isinstance(taken, UserError) and isinstance(taken, TapError)
    assert status_for(taken) is grpc.StatusCode.FAILED_PRECONDITION
    assert status_for(ShapeStoreError("a stored sample has method 'Nope'")) is (
        grpc.StatusCode.INTERNAL)


def test_a_models_failed_checks_are_not_user_errors_and_not_retried() -> None:
    for cls in (ReplayError, VerificationError):
        error = cls("the converted model does not match the original", where="/staging/1")
        assert isinstance(error, ModelCheckError)
        assert not isinstance(error, UserError) and not error.retryable


def test_an_error_shortens_a_long_value_but_quotes_a_path_whole() -> None:
    long_name = "m" * 500
    shortened = echo(long_name)
    assert len(shortened) < 100 and "(502 characters)" in shortened
    deep = PurePosixPath("/", *(f"directory-{n}" for n in range(30)), "config.toml")
    assert echo(deep) == repr(str(deep))
