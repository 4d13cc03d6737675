"""A fleet store deleted under running replicas, on real directories: every write and read
is a retryable FleetStoreError naming the fix, nothing recreates any part of the store, and
once the operator restores it (or a restarted replica creates a fresh one) the replicas
carry on with it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.base.faults import FaultArea, FaultBoard
from sidecar.fleet import FleetKey, FleetStoreError, Lease, LeaseBook, SharedDirectoryStore
from sidecar.fleet.operator_records import OperatorRecords
from sidecar.fleet.replica_claim import ReplicaClaim
from sidecar.fleet.store_root import FORMAT_FILE
from tests.fleet.conftest import LONG_LEASE, open_store, tree_bytes, write_version
from tests.support.waiting import wait_until

KEY = FleetKey("mlp", 3000, "2.21.0", "cpu-test")
OTHER_KEY = FleetKey("mlp", 4000, "2.21.0", "cpu-test")


def _remove_store(root: Path) -> None:
    shutil.rmtree(root)


def _empty_store(root: Path) -> None:
    for path in root.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _refused(call: Callable[[], object]) -> FleetStoreError:
    with pytest.raises(FleetStoreError) as raised:
        call()
    assert raised.value.retryable
    assert f"lost its {FORMAT_FILE}" in str(raised.value), raised.value
    assert "restore the store's files" in str(raised.value)
    assert "restart one replica" in str(raised.value)
    return raised.value


@pytest.mark.parametrize("delete", [_remove_store, _empty_store], ids=["rm -rf store",
                                                                       "rm -rf store/*"])
def test_a_deleted_store_is_refused_by_every_write_and_read_and_never_recreated(
    tmp_path: Path, delete: Callable[[Path], None]
) -> None:
    root = tmp_path / "store"
    store = open_store(root, "a", LONG_LEASE)
    records = OperatorRecords(root, "a")
    rollback = records.record_rollback("mlp", 2000, "bad")
    lease = store.claim(KEY)
    assert isinstance(lease, Lease)
    store.contribute_shapes(b"{}")
    version = write_version(tmp_path / "version")

    delete(root)
    found_before = tree_bytes(tmp_path)

    _refused(lambda: store.claim(OTHER_KEY))
    _refused(lambda: store.complete(KEY, lease, version, flavour="original", reason=None))
    _refused(lambda: store.contribute_shapes(b"{}"))
    _refused(lambda: store.shape_contributions())
    _refused(lambda: store.completed_keys("2.21.0", "cpu-test"))
    _refused(lambda: store.artifact(KEY))
    _refused(lambda: records.set_control("mlp", {"paused": True}, replacing=0))
    _refused(lambda: records.record_rollback("mlp", 3000, "bad too"))
    _refused(lambda: records.note_applied(rollback, {"outcome": "moved"}))
    _refused(lambda: records.control("mlp"))
    _refused(lambda: records.rollback_names())
    _refused(lambda: records.rollback(rollback.name))

    # Nothing came back: no key, shapes, controls or rollbacks directory, no store at all.
    assert not root.exists() or list(root.iterdir()) == []
    assert tree_bytes(tmp_path) == found_before


def test_a_restored_store_and_a_fresh_one_are_taken_up_by_a_running_replica(
    tmp_path: Path
) -> None:
    root = tmp_path / "store"
    faults = FaultBoard()
    book = LeaseBook("a", LONG_LEASE)
    store = SharedDirectoryStore(root, book)
    claim = ReplicaClaim(store.store_root, book, faults)
    claim.start()
    try:
        lease = store.claim(KEY)
        assert isinstance(lease, Lease)
        backup = tmp_path / "backup"
        shutil.copytree(root, backup)

        shutil.rmtree(root)
        with pytest.raises(FleetStoreError):
            claim.renew(_claim_lease(claim))
        fault = faults.current()[FaultArea.STORE].message
        assert f"lost its {FORMAT_FILE}" in fault and "Fix: restore" in fault
        assert not root.exists()

        shutil.copytree(backup, root)  # the operator restores it
        claim.renew(_claim_lease(claim))
        _wait_healthy(faults)
        store.complete(KEY, lease, write_version(tmp_path / "version"), flavour="original",
                       reason=None)
        assert store.artifact(KEY) is not None

        shutil.rmtree(root)  # gone for good: a restarted replica creates a fresh store
        open_store(root, "b")
        claim.renew(_claim_lease(claim))
        _wait_healthy(faults)
        assert (claim.directory / "lease.1").is_file(), "its claim laid down again"
        assert isinstance(store.claim(OTHER_KEY), Lease)
        store.contribute_shapes(b"{}")
        assert sorted(store.shape_contributions()) == ["a"]
    finally:
        claim.stop()


def _claim_lease(claim: ReplicaClaim) -> Lease:
    """The lease the claim's renewal thread renews."""
    assert claim.lease is not None
    return claim.lease


def _wait_healthy(faults: FaultBoard) -> None:
    """The store's fault cleared (a renewal of the claim's own thread that looked just
    before the store came back may report it once more; its next one clears it)."""
    wait_until(lambda: faults.healthy(FaultArea.STORE), 10, "the store's fault cleared")
