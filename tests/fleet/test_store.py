"""The shared-directory store on real files and real mounts: completed artifacts read back
byte-identical and stay as they are; a full or read-only volume is a retryable StorageError
that leaves nothing half visible; keys have one spelling."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from sidecar.base.errors import StorageError
from sidecar.fleet import (
    Completed,
    FleetArgumentError,
    FleetKey,
    FleetStoreError,
    Held,
    Lease,
    LeaseLostError,
    StoreFormatError,
)
from tests.fleet.conftest import open_store, tree_bytes, write_version
from tests.support.disks import fill_disk, small_tmpfs

KEY = FleetKey("mlp", 3000, "2.21.0", "cpu-test")


def _claimed(store_dir: Path, replica: str, key: FleetKey = KEY) -> Lease:
    lease = open_store(store_dir, replica).claim(key)
    assert isinstance(lease, Lease), lease
    return lease


def test_a_completed_artifact_reads_back_byte_identical_and_is_never_overwritten(
    tmp_path: Path
) -> None:
    store = open_store(tmp_path / "store", "builder")
    version = write_version(tmp_path / "version")
    lease = _claimed(tmp_path / "store", "builder")
    record = store.complete(KEY, lease, version, flavour="original", reason="no engine won")
    stored = tree_bytes(tmp_path / "store")

    other = open_store(tmp_path / "store", "other")
    done = other.claim(KEY)
    assert isinstance(done, Completed) and (done.replica, done.generation) == ("builder", 1)
    assert other.artifact(KEY) == record
    copied = tmp_path / "copied"
    copied.mkdir()
    assert other.copy_artifact(KEY, copied) == record
    assert tree_bytes(copied) == tree_bytes(version)
    assert record.reason == "no engine won" and record.flavour == "original"

    with pytest.raises(LeaseLostError, match="already ended: replica 'builder' completed it"):
        store.complete(KEY, lease, write_version(tmp_path / "newer", seed=9),
                       flavour="converted", reason=None)
    assert tree_bytes(tmp_path / "store") == stored
    assert other.completed_keys("2.21.0", "cpu-test") == [KEY]
    assert other.completed_keys("2.21.0", "gpu-other") == []


def test_keys_of_two_device_slugs_are_two_keys_each_claimed_once(tmp_path: Path) -> None:
    gpu = FleetKey.in_namespace("mlp", 3000, "tf-2.21.0/gpu-nvidia-h100-sm90")
    assert gpu.slug == "gpu-nvidia-h100-sm90" and gpu.namespace == "tf-2.21.0/gpu-nvidia-h100-sm90"
    assert FleetKey.from_path(PurePosixPath(gpu.path)) == gpu
    assert FleetKey.from_path(PurePosixPath("keys/tf-2.21.0/cpu-test/mlp/03000")) is None
    _claimed(tmp_path / "store", "a")
    _claimed(tmp_path / "store", "b", gpu)
    for bad, field in [(("bad name", 1, "2.21.0", "cpu"), "model"),
                       (("mlp", -1, "2.21.0", "cpu"), "version"),
                       (("mlp", 1, "../x", "cpu"), "TensorFlow version"),
                       (("mlp", 1, "2.21.0", "CPU/../x"), "device slug")]:
        with pytest.raises(FleetArgumentError, match=f"fleet key {field}"):
            FleetKey(*bad)
    with pytest.raises(FleetArgumentError, match="replica id"):
        open_store(tmp_path / "store", "../escape")


def test_a_directory_that_is_no_fleet_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "model.pb").write_bytes(b"x")
    with pytest.raises(StoreFormatError, match="it is not a fleet store"):
        open_store(tmp_path / "elsewhere", "a")


def test_a_full_store_is_a_retryable_storage_error_and_nothing_half_written_is_visible(
    tmp_path: Path
) -> None:
    with small_tmpfs(tmp_path / "volume", "2m") as volume:
        store = open_store(volume, "builder")
        lease = _claimed(volume, "builder")
        big = write_version(tmp_path / "big", size=3 << 20)
        with pytest.raises(FleetStoreError) as raised:
            store.complete(KEY, lease, big, flavour="converted", reason=None)
        error = raised.value
        assert isinstance(error, StorageError) and error.retryable
        assert error.errno == errno.ENOSPC
        assert "No space left on device" in str(error) and str(volume) in str(error)
        assert "free space on the filesystem" in str(error)
        assert store.artifact(KEY) is None
        assert not list((volume / KEY.path).glob("artifact.*"))

        filler = fill_disk(volume)
        with pytest.raises(FleetStoreError, match="No space left"):
            open_store(volume, "late").claim(FleetKey("other", 1000, "2.21.0", "cpu-test"))
        filler.unlink()
        small = write_version(tmp_path / "small")
        record = store.complete(KEY, lease, small, flavour="converted", reason=None)
        assert record.generation == 1  # retried under the same lease once there was room
        [artifact] = (volume / KEY.path).glob("artifact.1.*")
        assert tree_bytes(artifact / "version") == tree_bytes(small)


def test_a_read_only_store_refuses_writes_retryably_and_still_serves_completed_artifacts(
    tmp_path: Path
) -> None:
    with small_tmpfs(tmp_path / "volume", "8m") as volume:
        store = open_store(volume, "builder")
        version = write_version(tmp_path / "version")
        store.complete(KEY, _claimed(volume, "builder"), version, flavour="converted",
                       reason=None)
        subprocess.run(["mount", "-o", "remount,ro", str(volume)], check=True)
        try:
            reader = open_store(volume, "reader")
            copied = tmp_path / "copied"
            copied.mkdir()
            assert reader.copy_artifact(KEY, copied) is not None
            assert tree_bytes(copied) == tree_bytes(version)
            with pytest.raises(FleetStoreError) as raised:
                reader.claim(FleetKey("mlp", 4000, "2.21.0", "cpu-test"))
            assert raised.value.errno == errno.EROFS and raised.value.retryable
            assert "mount the volume holding" in str(raised.value)
            with pytest.raises(FleetStoreError, match="shape counts"):
                reader.contribute_shapes(b"{}")
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(volume)], check=True)


def test_completing_from_a_version_that_is_not_there_stores_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store", "builder")
    lease = _claimed(tmp_path / "store", "builder")
    with pytest.raises(FleetStoreError, match="No such file or directory"):
        store.complete(KEY, lease, tmp_path / "missing", flavour="converted", reason=None)
    assert store.artifact(KEY) is None
    still = store.claim(KEY)
    assert isinstance(still, Held) and still.replica == "builder" and still.generation == 1
