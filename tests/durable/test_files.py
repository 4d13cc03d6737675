"""The durable file operations on real files (the converter's saves and the sidecar's writes)."""

from __future__ import annotations

import errno
import os
import pathlib

import pytest

from durable import staged_directory, write_atomically, write_new


def test_a_staged_tree_with_a_dangling_link_appears_whole(tmp_path: pathlib.Path) -> None:
    final = tmp_path / "out"
    with staged_directory(final) as staging:
        (staging / "variables").mkdir(parents=True)
        (staging / "variables" / "data").write_bytes(b"weights")
        # Flushing follows no link: a dangling one is part of the tree, not an error.
        os.symlink(tmp_path / "gone", staging / "link")
    assert (final / "variables" / "data").read_bytes() == b"weights"
    assert os.readlink(final / "link") == str(tmp_path / "gone")
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(
        tmp_path: pathlib.Path) -> None:
    path = tmp_path / "config"
    write_atomically(path, b"old")
    (tmp_path / "blocker").mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomically(tmp_path / "blocker", b"new")
    write_atomically(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["blocker", "config"]


def test_a_new_file_is_created_once_whole_and_never_replaced(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "outcome"
    assert write_new(path, b"first") is True
    assert write_new(path, b"second") is False
    assert path.read_bytes() == b"first"
    assert sorted(os.listdir(tmp_path)) == ["outcome"]  # no temporary left either way


def test_a_staged_directory_never_replaces_one_that_exists(tmp_path: pathlib.Path) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "kept").write_bytes(b"old")
    with pytest.raises(FileExistsError) as raised, staged_directory(final) as staging:
        (staging / "new").write_bytes(b"new")  # never reached
    assert raised.value.errno == errno.EEXIST and raised.value.filename == str(final)
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert sorted(os.listdir(final)) == ["kept"]
