"""Damaged artifacts in the shared-directory store, on real files: each install checks the
copy against the manifest its builder recorded, a damaged one is refused and the key is
built again by exactly one replica, and unreadable outcome files are logged once and
counted."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sidecar.fleet import (
    Completed,
    DamagedArtifactError,
    FleetKey,
    Held,
    Lease,
    SharedDirectoryStore,
)
from sidecar.fleet.lease import MAX_REJECTIONS
from sidecar.metrics.fleet_collector import FleetStoreCollector
from tests.fleet.conftest import LONG_LEASE, open_store, tree_bytes, write_version
from tests.fleet.replicas import outcomes

KEY = FleetKey("mlp", 3000, "2.21.0", "cpu-test")


def _completed(store_dir: Path, replica: str, version: Path) -> SharedDirectoryStore:
    """The store as ``replica``, after it built and completed ``KEY`` from ``version``."""
    store = open_store(store_dir, replica, LONG_LEASE)
    lease = store.claim(KEY)
    assert isinstance(lease, Lease), lease
    store.complete(KEY, lease, version, flavour="converted", reason=None)
    return store


def _artifact(store_dir: Path) -> Path:
    """The directory the key's completion names."""
    key_dir = store_dir / KEY.path
    done = [p for p in key_dir.iterdir() if p.name.startswith("artifact.")]
    assert len(done) == 1, done
    return done[0]


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("damage", "named"), [
    (lambda v: _flip_one_byte(v / "variables" / "variables.data-00000-of-00001"),
     r"version/variables/variables\.data-00000-of-00001 differs from the bytes its builder"),
    (lambda v: (v / "saved_model.pb").write_bytes(b"garbage"),
     r"version/saved_model\.pb holds 7 bytes, its builder wrote 4097"),
    (lambda v: (v / "variables" / "variables.index").unlink(),
     r"version/variables/variables\.index is missing"),
    (lambda v: (v / "extra.bin").write_bytes(b"x"),
     r"version/extra\.bin is a file its builder did not write"),
    (lambda v: os.symlink("elsewhere", v / "assets"),
     r"link assets points to 'elsewhere', its builder wrote None"),
])
def test_an_artifact_changed_after_completion_is_refused_naming_the_file(
    tmp_path: Path, damage: object, named: str
) -> None:
    store_dir = tmp_path / "store"
    version = write_version(tmp_path / "version")
    _completed(store_dir, "builder", version)
    assert callable(damage)
    damage(_artifact(store_dir) / "version")

    installer = open_store(store_dir, "installer")
    with pytest.raises(DamagedArtifactError, match=named) as raised:
        installer.copy_artifact(KEY, _made(tmp_path / "copied"))
    assert raised.value.retryable and raised.value.generation == 1
    assert "generation 1, built by 'builder'" in str(raised.value)
    assert "the fleet builds the key again under a new lease" in str(raised.value)


def test_an_intact_artifact_copies_byte_identical_with_its_manifest(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    version = write_version(tmp_path / "version")
    os.symlink("variables.index", version / "variables" / "alias")
    _completed(store_dir, "builder", version)

    record = open_store(store_dir, "installer").copy_artifact(KEY, _made(tmp_path / "copied"))

    assert record is not None and record.manifest is not None
    assert record.manifest.links == {"variables/alias": "variables.index"}
    assert {*record.manifest.files, *record.manifest.links} == set(tree_bytes(version))
    assert tree_bytes(tmp_path / "copied") == tree_bytes(version)
    written = json.loads((_artifact(store_dir) / "artifact.json").read_text())
    assert written["manifest"]["files"]["saved_model.pb"]["size"] == 4097


def test_an_artifact_completed_before_manifests_installs_unchecked(tmp_path: Path) -> None:
    """Its record has no manifest: the copy is not compared (the job's load check is what
    still applies to it, see test_fleet_jobs)."""
    store_dir = tmp_path / "store"
    _completed(store_dir, "builder", write_version(tmp_path / "version"))
    record_file = _artifact(store_dir) / "artifact.json"
    old = json.loads(record_file.read_text())
    del old["manifest"]
    record_file.write_text(json.dumps(old))
    (_artifact(store_dir) / "version" / "saved_model.pb").write_bytes(b"garbage")

    record = open_store(store_dir, "installer").copy_artifact(KEY, _made(tmp_path / "copied"))

    assert record is not None and record.manifest is None
    assert (tmp_path / "copied" / "saved_model.pb").read_bytes() == b"garbage"


@pytest.mark.parametrize(("damage", "named"), [
    (lambda a: (a / "artifact.json").write_bytes(b"{not json"),
     r"artifact\.json is missing or no JSON object"),
    (lambda a: (a / "artifact.json").write_text(json.dumps({"model": "mlp"})),
     r"artifact record lacks or mistypes 'served'"),
    (lambda a: (a / "artifact.json").unlink(), r"artifact\.json is missing"),
])
def test_an_unreadable_record_is_damage_and_the_key_is_built_again_by_one_replica(
    tmp_path: Path, damage: object, named: str
) -> None:
    store_dir = tmp_path / "store"
    _completed(store_dir, "builder", write_version(tmp_path / "version"))
    first_artifact = _artifact(store_dir)
    assert callable(damage)
    damage(first_artifact)
    installer = open_store(store_dir, "installer", LONG_LEASE)
    other = open_store(store_dir, "other", LONG_LEASE)

    with pytest.raises(DamagedArtifactError, match=named) as raised:
        installer.artifact(KEY)
    assert installer.reject(KEY, raised.value.generation, raised.value.what)

    rebuild = installer.claim(KEY)
    assert isinstance(rebuild, Lease) and rebuild.generation == 2
    assert isinstance(other.claim(KEY), Held)  # exactly one rebuilds it
    assert other.reject(KEY, 1, "seen damaged too")  # refused already: nothing more
    assert installer.refused_artifacts == {"mlp": 1}
    registry = CollectorRegistry()
    registry.register(FleetStoreCollector(installer))
    assert registry.get_sample_value("tftrt_sidecar_fleet_artifacts_refused_total",
                                     {"model": "mlp"}) == 1.0
    assert other.artifact(KEY) is None  # a rejected generation is not complete for anyone
    assert other.completed_keys("2.21.0", "cpu-test") == []
    rebuilt = write_version(tmp_path / "rebuilt", seed=7)
    installer.complete(KEY, rebuild, rebuilt, flavour="converted", reason=None)

    done = other.claim(KEY)
    assert isinstance(done, Completed) and done.generation == 2
    record = other.copy_artifact(KEY, _made(tmp_path / "copied"))
    assert record is not None and record.generation == 2
    assert tree_bytes(tmp_path / "copied") == tree_bytes(rebuilt)
    assert outcomes(store_dir / KEY.path) == {1: "complete", 2: "complete"}
    rejection = json.loads((store_dir / KEY.path / "rejected.1").read_text())
    assert rejection["replica"] == "installer" and rejection["built_by"] == "builder"
    assert not first_artifact.exists()  # the rebuild's completion swept the refused one


def test_a_completion_naming_no_artifact_of_its_generation_is_damage(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    _completed(store_dir, "builder", write_version(tmp_path / "version"))
    outcome = store_dir / KEY.path / "outcome.1"
    record = json.loads(outcome.read_text())
    record["artifact"] = "artifact.7.elsewhere"
    outcome.write_text(json.dumps(record))

    with pytest.raises(DamagedArtifactError, match=r"names 'artifact\.7\.elsewhere', no artifact"):
        open_store(store_dir, "installer").copy_artifact(KEY, _made(tmp_path / "copied"))


def test_after_too_many_refusals_the_artifact_is_kept_and_a_removed_key_is_not_recreated(
    tmp_path: Path
) -> None:
    store_dir = tmp_path / "store"
    store = open_store(store_dir, "builder", LONG_LEASE)
    for generation in range(1, MAX_REJECTIONS + 2):
        lease = store.claim(KEY)
        assert isinstance(lease, Lease) and lease.generation == generation
        store.complete(KEY, lease, write_version(tmp_path / f"v{generation}", seed=generation),
                       flavour="converted", reason=None)
        refused = store.reject(KEY, generation, "test")
        assert refused is (generation <= MAX_REJECTIONS)

    kept = store.claim(KEY)
    assert isinstance(kept, Completed) and kept.generation == MAX_REJECTIONS + 1
    shutil.rmtree(store_dir / KEY.path)  # the fix the kept artifact's error names
    assert store.reject(KEY, MAX_REJECTIONS + 1, "after the fix")  # nothing left to refuse
    assert not (store_dir / KEY.path).exists()
    again = store.claim(KEY)
    assert isinstance(again, Lease) and again.generation == 1


def test_an_unreadable_outcome_file_is_logged_once_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store_dir = tmp_path / "store"
    store = open_store(store_dir, "reader", LONG_LEASE)
    lease = store.claim(KEY)
    assert isinstance(lease, Lease)
    store.release(lease)
    (store_dir / KEY.path / "outcome.1").write_bytes(b"\x00garbage")
    registry = CollectorRegistry()
    registry.register(FleetStoreCollector(store))

    with caplog.at_level(logging.WARNING, logger="sidecar.fleet"):
        rebuild = store.claim(KEY)  # generation 1 still counts as ended
        for _ in range(3):
            assert store.artifact(KEY) is None
            assert store.completed_keys("2.21.0", "cpu-test") == []

    assert isinstance(rebuild, Lease) and rebuild.generation == 2
    logged = [r.getMessage() for r in caplog.records if "outcome.1" in r.getMessage()]
    assert len(logged) == 1, logged
    assert "no outcome record this sidecar writes" in logged[0]
    assert store.corrupt_outcomes == 1
    assert registry.get_sample_value("tftrt_sidecar_fleet_corrupt_outcomes_total") == 1.0


def _made(path: Path) -> Path:
    path.mkdir()
    return path

