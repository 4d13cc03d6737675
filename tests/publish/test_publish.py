"""Publishing into a real serving base while a TF-Serving-like poller watches it."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from durable import rename_no_replace
from sidecar.base.errors import StagingError, StorageError, VersionAlreadyPublishedError
from sidecar.publish import VersionPublisher
from sidecar.tfserving.layout import published_versions
from tests.support.disks import immutable, small_tmpfs, tree_listing
from tests.support.serving_poller import ServingPoller


def hidden_names(model_dir: Path) -> list[str]:
    return sorted(name for name in os.listdir(model_dir) if name.startswith("."))


def test_published_versions_are_never_seen_partial(tmp_path: Path, tiny_model: Path) -> None:
    steps: list[str] = []
    publisher = VersionPublisher(tmp_path, checkpoint=steps.append)
    with ServingPoller(tmp_path, poll_seconds=0.01) as poller:
        for version in (1, 2, 3):
            path = publisher.publish_copy("tiny", version, tiny_model)
            assert path == tmp_path / "tiny" / str(version)
            assert tree_listing(path) == tree_listing(tiny_model)
        assert poller.wait_for("tiny", 3)
    assert poller.violations == []
    assert sorted(poller.loaded) == [("tiny", 1), ("tiny", 2), ("tiny", 3)]
    assert publisher.published_versions("tiny") == [1, 2, 3]
    assert publisher.models() == ["tiny"]
    assert hidden_names(tmp_path / "tiny") == []
    assert steps[0] == "staging-created"
    assert steps[-4:] == ["staged", "synced", "renamed", "published"]


def test_staging_lives_hidden_inside_the_model_dir(tmp_path: Path, tiny_model: Path) -> None:
    publisher = VersionPublisher(tmp_path, token=lambda: "abcd")
    with publisher.stage("tiny", 7) as staged:
        assert staged.path == tmp_path / "tiny" / ".staging-7-abcd"
        assert os.stat(staged.path).st_dev == os.stat(tmp_path).st_dev
        assert published_versions(tmp_path / "tiny") == []
        staged.copy_from(tiny_model)
        staged.commit()
    assert published_versions(tmp_path / "tiny") == [7]
    with pytest.raises(StagingError, match="already committed"):
        staged.commit()


def test_leaving_the_block_without_commit_leaves_nothing(tmp_path: Path, tiny_model: Path) -> None:
    publisher = VersionPublisher(tmp_path)
    with pytest.raises(RuntimeError), publisher.stage("tiny", 1) as staged:
        staged.copy_from(tiny_model)
        raise RuntimeError("conversion failed half-way")
    with publisher.stage("tiny", 2) as staged:
        staged.copy_from(tiny_model)
    assert os.listdir(tmp_path / "tiny") == []


def test_an_existing_version_is_never_overwritten(tmp_path: Path, tiny_model: Path) -> None:
    publisher = VersionPublisher(tmp_path)
    first = publisher.publish_copy("tiny", 1, tiny_model)
    before = tree_listing(first)
    with pytest.raises(VersionAlreadyPublishedError, match=r"version 1 is already published"):
        publisher.publish_copy("tiny", 1, tiny_model)
    staged = publisher.stage("tiny", 2)
    staged.copy_from(tiny_model)
    (tmp_path / "tiny" / "2").mkdir()  # the number gets taken (empty!) before the commit
    with pytest.raises(VersionAlreadyPublishedError) as caught:
        staged.commit()
    assert "Fix: land the new model under a higher version number" in str(caught.value)
    assert os.listdir(tmp_path / "tiny" / "2") == []
    assert tree_listing(first) == before
    assert hidden_names(tmp_path / "tiny") == []


def test_rename_no_replace_refuses_even_an_empty_target(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("new")
    (tmp_path / "b").mkdir()  # plain os.rename would silently replace this
    with pytest.raises(FileExistsError):
        rename_no_replace(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a" / "f").exists()


def test_bad_model_name_or_version_is_refused(tmp_path: Path) -> None:
    publisher = VersionPublisher(tmp_path)
    for model, version in ((".hidden", 1), ("a/b", 1), ("m", -1), ("", 1)):
        with pytest.raises(StagingError, match="cannot publish"):
            publisher.stage(model, version)


def test_stale_staging_and_removals_are_cleaned_on_start(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    for name in (".staging-3-aa", ".staging-4-bb", ".removing-1-cc", ".rolled-back-2", "2"):
        (model_dir / name / "variables").mkdir(parents=True)
    (tmp_path / ".other" / ".staging-9-x").mkdir(parents=True)
    removed = VersionPublisher(tmp_path).clean_leftovers()
    assert sorted(p.name for p in removed) == [".removing-1-cc", ".staging-3-aa", ".staging-4-bb"]
    assert sorted(os.listdir(model_dir)) == [".rolled-back-2", "2"]
    assert VersionPublisher(tmp_path / "absent").clean_leftovers() == []


def big_model(tmp_path: Path, tiny_model: Path, megabytes: int) -> Path:
    source = tmp_path / "big"
    shutil.copytree(tiny_model, source)
    (source / "assets").mkdir(exist_ok=True)
    (source / "assets" / "vocab.bin").write_bytes(os.urandom(megabytes << 20))
    return source


def test_disk_full_is_a_clear_error_and_leaves_nothing(tmp_path: Path, tiny_model: Path) -> None:
    source = big_model(tmp_path, tiny_model, megabytes=2)
    with small_tmpfs(tmp_path / "serving", "1m") as serving:
        publisher = VersionPublisher(serving)
        publisher.publish_copy("tiny", 1, tiny_model)
        with (
            ServingPoller(serving, poll_seconds=0.02) as poller,
            pytest.raises(StorageError) as caught,
        ):
            publisher.publish_copy("tiny", 2, source)
        error = caught.value
        assert error.errno == errno.ENOSPC
        assert error.retryable
        assert "No space left on device" in str(error)
        assert "Fix: free space on the filesystem" in str(error)
        assert ".staging-2-" in error.where
        assert os.listdir(serving / "tiny") == ["1"]
        assert poller.violations == []
        publisher.publish_copy("tiny", 2, tiny_model)  # the space came back
        assert publisher.published_versions("tiny") == [1, 2]


def test_permission_errors_are_clear_and_leave_nothing(tmp_path: Path, tiny_model: Path) -> None:
    publisher = VersionPublisher(tmp_path)
    publisher.publish_copy("tiny", 1, tiny_model)
    model_dir = tmp_path / "tiny"
    with immutable(model_dir), pytest.raises(StorageError) as caught:
        publisher.stage("tiny", 2)
    assert caught.value.errno == errno.EPERM
    assert "could not create a staging directory" in str(caught.value)
    assert "Fix: make" in str(caught.value)

    staged = publisher.stage("tiny", 3)
    staged.copy_from(tiny_model)
    with immutable(model_dir), pytest.raises(StorageError) as caught:
        staged.commit()  # the rename is refused; the staging dir cannot even be deleted
    assert "could not rename the staged version into place" in str(caught.value)
    assert published_versions(model_dir) == [1]
    assert len(hidden_names(model_dir)) == 1  # left hidden, invisible to TF Serving
    assert publisher.clean_leftovers() == [staged.path]
    assert os.listdir(model_dir) == ["1"]
