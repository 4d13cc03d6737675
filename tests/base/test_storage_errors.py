"""Telling a storage fault from other failures, on errors raised for real: TensorFlow writing
to a full tmpfs (an OpError that only says so in its message), an OSError from a read-only
bind mount, and the same faults wrapped in other errors."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from sidecar.base.errors import StorageError, UserError, storage_error_in
from tests.support.disks import small_tmpfs


def raised_by(action: object) -> BaseException:
    try:
        action()  # type: ignore[operator]
    except Exception as exc:
        return exc
    pytest.fail("nothing was raised")


def test_tensorflow_out_of_space_is_a_storage_error_naming_the_fix(tmp_path: Path) -> None:
    import tensorflow as tf

    with small_tmpfs(tmp_path / "disk", "64k") as disk:
        exc = raised_by(lambda: tf.io.write_file(str(disk / "big"), tf.constant(b"x" * 200_000)))
    assert not isinstance(exc, OSError)  # TensorFlow says it only in words
    found = storage_error_in(exc, action="save the model", path=disk)
    assert found is not None and found.retryable and found.errno == errno.ENOSPC
    assert str(found).startswith("could not save the model: No space left on device")
    assert "Fix: free space on the filesystem holding" in str(found)


def test_a_read_only_mount_wrapped_in_another_error_is_found(tmp_path: Path) -> None:
    volume, mounted = tmp_path / "volume", tmp_path / "mounted"
    volume.mkdir()
    mounted.mkdir()
    subprocess.run(["mount", "--bind", "-o", "ro", str(volume), str(mounted)], check=True)
    try:
        cause = raised_by(lambda: (mounted / "f").write_bytes(b"x"))
    finally:
        subprocess.run(["umount", str(mounted)], check=True)
    try:
        raise UserError("the model could not be written") from cause
    except UserError as wrapped:
        found = storage_error_in(wrapped, action="write", path=tmp_path)
    assert found is not None and found.errno == errno.EROFS
    assert found.where == str(mounted / "f")  # the file the OSError names
    assert "mount the volume holding" in str(found)


def test_other_failures_are_not_storage_faults(tmp_path: Path) -> None:
    assert storage_error_in(ValueError("shapes must be equal rank"), action="a", path="p") is None
    assert storage_error_in(UserError("bad model"), action="a", path="p") is None
    exists = raised_by(lambda: os.mkdir(tmp_path))  # an OSError, but not the storage's fault
    assert isinstance(exists, FileExistsError)
    assert storage_error_in(exists, action="a", path="p") is None
    already = StorageError("disk gone", where="p")
    assert storage_error_in(already, action="a", path="p") is already
