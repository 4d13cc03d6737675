"""Errors keep the promises their words and classes make: an error that tells the caller to
retry is retryable, a change in incoming under a job is not a person's mistake, and a
storage fault says which storage it is in where it is raised."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import shutil
from pathlib import Path

import grpc
import pytest

import sidecar
from sidecar.admin.errors import NotReadyError
from sidecar.admin.status import status_for
from sidecar.base.errors import SidecarError, StorageError, UserError
from sidecar.base.faults import FaultArea
from sidecar.fleet.errors import FleetStoreError
from sidecar.jobs.errors import (
    SourceChangedError,
    SourceMovedError,
    VersionTooOldError,
    VersionVanishedError,
)
from sidecar.jobs.source import JobSource
from sidecar.shapes import ShapeStoreWriteError
from sidecar.state import JobJournal
from sidecar.state.journal import JOURNAL_FILE_NAME
from sidecar.tfserving.model_config import ModelConfigWriter


def _error_classes() -> list[type[SidecarError]]:
    names = [info.name for info in pkgutil.walk_packages(sidecar.__path__, "sidecar.")]
    found: list[type[SidecarError]] = []
    for name in ["sidecar.base.errors", *(name for name in names if name.endswith(".errors"))]:
        module = importlib.import_module(name)
        found.extend(cls for _, cls in inspect.getmembers(module, inspect.isclass)
                     if cls.__module__ == name and issubclass(cls, SidecarError))
    return found


def test_every_error_the_admin_api_answers_unavailable_with_is_retryable() -> None:
    # UNAVAILABLE tells a gRPC client to retry with a backoff: the error must say so too.
    unavailable = [cls for cls in _error_classes()
                   if status_for(cls.__new__(cls)) is grpc.StatusCode.UNAVAILABLE]
    assert NotReadyError in unavailable and StorageError in unavailable
    assert [cls.__name__ for cls in unavailable if not cls.retryable] == []


def test_not_ready_says_retry_shortly_and_is_retryable() -> None:
    error = NotReadyError("the sidecar is loading its state or shutting down",
                          where="/tftrt.sidecar.admin.v1.SidecarAdmin/ListModels",
                          fix="retry in a few seconds; the health service says when it serves")
    assert error.retryable and "retry" in str(error)
    assert not isinstance(error, UserError)


def _version(base: Path) -> JobSource:
    directory = base / "m" / "1" / "variables"
    directory.mkdir(parents=True)
    (directory.parent / "saved_model.pb").write_bytes(b"graph")
    (directory / "variables.data-00000-of-00001").write_bytes(b"weights")
    return JobSource(base, "m", 1, named="model 'm' version 1000", is_served=lambda _: False)


def test_a_source_rewritten_under_its_job_is_retryable_and_no_users_mistake(
    tmp_path: Path
) -> None:
    source = _version(tmp_path / "incoming")
    source.start()
    (source.path / "saved_model.pb").write_bytes(b"another graph")
    with pytest.raises(SourceChangedError) as raised:
        source.check()
    assert isinstance(raised.value, SourceMovedError)
    assert raised.value.retryable, "the job starts again once the version settles"
    assert not isinstance(raised.value, UserError), "replacing a version is allowed"


def test_a_version_removed_under_its_job_is_no_users_mistake_and_not_retried(
    tmp_path: Path
) -> None:
    source = _version(tmp_path / "incoming")
    source.start()
    shutil.rmtree(source.path)
    with pytest.raises(VersionVanishedError) as raised:
        source.check()
    assert isinstance(raised.value, SourceMovedError)
    assert not isinstance(raised.value, UserError), "removing a version is allowed"
    assert not raised.value.retryable, "trying again finds it gone again"


def test_a_version_too_old_to_keep_is_the_users_to_fix() -> None:
    error = VersionTooOldError("model 'm' version 1000 is older than the 1 newest ...",
                               where="/incoming/m/1", fix="land it under a higher version")
    assert isinstance(error, UserError) and not isinstance(error, SourceMovedError)


def test_storage_errors_name_their_area_where_they_are_raised(tmp_path: Path) -> None:
    # Each is raised under one directory of no particular name: the area is the raise's.
    base = tmp_path / "volume"

    config_file = base / "models.config"
    (config_file / "a file").mkdir(parents=True)  # a directory where the config file goes
    with pytest.raises(StorageError) as config_fault:
        ModelConfigWriter(config_file, base / "serving").write(["m"])
    assert config_fault.value.area is FaultArea.SERVING

    source = _version(base / "incoming")
    source.start()
    os.rename(base / "incoming", base / "away")  # the whole incoming base gone: a fault
    with pytest.raises(StorageError, match="is missing") as incoming_fault:
        source.check()
    assert incoming_fault.value.area is FaultArea.INCOMING

    (base / "state" / JOURNAL_FILE_NAME).mkdir(parents=True)  # where the database goes
    with pytest.raises(StorageError) as state_fault:
        JobJournal.open(base / "state", clock=lambda: 0.0)
    assert state_fault.value.area is FaultArea.STATE

    # Errors of one storage name it on their class.
    assert FleetStoreError("the store refused a write").area is FaultArea.STORE
    assert ShapeStoreWriteError("database or disk is full").area is FaultArea.STATE
