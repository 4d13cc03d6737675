"""Retention, withdrawal, rollback: versions leave TF Serving's view atomically, never the last."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sidecar.base.errors import OnlyServableVersionError, UserError
from sidecar.publish import (
    VersionPublisher,
    apply_retention,
    restore_withdrawn,
    roll_back_newest,
    withdraw_version,
)
from sidecar.tfserving.layout import published_versions
from tests.support.disks import tree_listing
from tests.support.serving_poller import ServingPoller


def publish(serving: Path, model_source: Path, versions: list[int]) -> Path:
    publisher = VersionPublisher(serving)
    for version in versions:
        publisher.publish_copy("tiny", version, model_source)
    return serving / "tiny"


def test_retention_keeps_the_newest(tmp_path: Path, tiny_model: Path) -> None:
    model_dir = publish(tmp_path, tiny_model, [1, 2, 3, 4, 5])
    with ServingPoller(tmp_path, poll_seconds=0.02) as poller:
        poller.wait_for("tiny", 5)
        assert apply_retention(model_dir, keep=2) == [1, 2, 3]
    assert poller.violations == []
    assert sorted(os.listdir(model_dir)) == ["4", "5"]  # nothing left behind
    assert apply_retention(model_dir, keep=2) == []


@pytest.mark.parametrize("keep", [0, -3, 1])
def test_retention_never_removes_the_only_version(tmp_path: Path, keep: int) -> None:
    model_dir = tmp_path / "m"
    for version in (7, 9):
        (model_dir / str(version)).mkdir(parents=True)
    assert apply_retention(model_dir, keep=keep) == [7]
    assert published_versions(model_dir) == [9]
    assert apply_retention(model_dir, keep=keep) == []
    assert published_versions(model_dir) == [9]


def test_withdraw_refuses_the_only_version(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    for version in (1, 2):
        (model_dir / str(version)).mkdir(parents=True)
    assert withdraw_version(model_dir, 3) is None
    assert withdraw_version(model_dir, 2) == model_dir / ".withdrawn-2"
    with pytest.raises(OnlyServableVersionError) as caught:
        withdraw_version(model_dir, 1)
    assert "only servable version" in str(caught.value)
    assert "Fix: publish another version first" in str(caught.value)
    assert published_versions(model_dir) == [1]


def test_withdrawal_keeps_the_version_aside_and_restore_brings_it_back(
    tmp_path: Path, tiny_model: Path
) -> None:
    model_dir = publish(tmp_path, tiny_model, [1, 2, 3])
    before = tree_listing(model_dir / "2")
    with ServingPoller(tmp_path, poll_seconds=0.02) as poller:
        poller.wait_for("tiny", 3)
        kept = withdraw_version(model_dir, 2, token=lambda: "t1")
        assert kept == model_dir / ".withdrawn-2"
        assert published_versions(model_dir) == [1, 3]
        assert tree_listing(kept) == before  # nothing deleted, nothing half-moved
        assert restore_withdrawn(model_dir, 2) == model_dir / "2"
        assert poller.wait_for("tiny", 2)
    assert poller.violations == []
    assert tree_listing(model_dir / "2") == before
    assert restore_withdrawn(model_dir, 2) is None  # nothing left to restore
    assert withdraw_version(model_dir, 2) == model_dir / ".withdrawn-2"
    (model_dir / "2").mkdir()  # an operator put another 2 in view meanwhile
    assert restore_withdrawn(model_dir, 2) is None
    assert withdraw_version(model_dir, 2, token=lambda: "t2") == model_dir / ".withdrawn-2-t2"


def test_rollback_hides_the_newest_so_the_previous_serves(tmp_path: Path, tiny_model: Path) -> None:
    model_dir = publish(tmp_path, tiny_model, [1, 2, 3])
    first = roll_back_newest(model_dir, token=lambda: "t1")
    assert (first.version, first.now_serving) == (3, 2)
    assert first.moved_to == model_dir / ".rolled-back-3"
    assert published_versions(model_dir) == [1, 2]
    shutil.copytree(first.moved_to, model_dir / "3")  # an operator restores 3 by hand...
    second = roll_back_newest(model_dir, token=lambda: "t2")  # ...and rolls it back again
    assert second.moved_to == model_dir / ".rolled-back-3-t2"
    assert sorted(os.listdir(model_dir)) == [".rolled-back-3", ".rolled-back-3-t2", "1", "2"]
    roll_back_newest(model_dir)
    with pytest.raises(OnlyServableVersionError, match="refusing to roll back"):
        roll_back_newest(model_dir)
    assert published_versions(model_dir) == [1]
    assert VersionPublisher(tmp_path).clean_leftovers() == []  # rolled-back copies are kept


def test_rollback_of_an_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no published version to roll back"):
        roll_back_newest(tmp_path / "nothing")


def test_retention_keeps_the_original_served_first_beside_the_newest(
    tmp_path: Path, tiny_model: Path
) -> None:
    # 1000 and 2000 were originals served first; 1001 and 2001 their converted forms.
    model_dir = publish(tmp_path, tiny_model, [1000, 1001, 2000])
    served_first = [1000, 2000]
    # While 2001 converts, 2000 is newest and counts: 1001 is the rollback target.
    assert apply_retention(model_dir, keep=2, served_first=served_first) == [1000]
    VersionPublisher(tmp_path).publish_copy("tiny", 2001, tiny_model)
    # The converted form took over: its original stays beside the two newest others.
    assert apply_retention(model_dir, keep=2, served_first=served_first) == []
    assert published_versions(model_dir) == [1001, 2000, 2001]
    VersionPublisher(tmp_path).publish_copy("tiny", 3000, tiny_model)
    # A newer incoming version landed: 2000 counts again and leaves first.
    assert apply_retention(model_dir, keep=2, served_first=[*served_first, 3000]) == [1001,
                                                                                      2000]
    assert published_versions(model_dir) == [2001, 3000]


def test_retention_without_originals_served_first_counts_every_number(
    tmp_path: Path, tiny_model: Path
) -> None:
    model_dir = publish(tmp_path, tiny_model, [1000, 2000, 2001])
    assert apply_retention(model_dir, keep=2) == [1000]
