"""Replica ids and the store's marker with real ``tftrt-sidecar run`` processes on one store:
a second live replica with the same ``--replica-id`` is refused at start with one line; a
restarted one gets its id back once its SIGKILLed predecessor's lease expired, or at once
after a clean stop; a store deleted under a running replica shows on its health
(``tftrt.sidecar.Store``), is never recreated, and is taken up again once restored."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.fleet.lease import list_key, read_outcome
from sidecar.fleet.store_root import FORMAT_FILE
from tests.support.e2e import free_port
from tests.support.running_sidecar import REPO_ROOT
from tests.support.waiting import wait_until

LEASE = 2.0
"""Seconds: the replicas' leases (renewed every third of it)."""

STORE_HEALTH = "tftrt.sidecar.Store"


class Sidecar:
    """A ``tftrt-sidecar run`` replica of the fleet at ``store``, with its own directories
    under ``home``, an admin API and nothing else (no tap: these tests need none)."""

    def __init__(self, home: Path, store: Path, replica_id: str, incoming: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.admin = f"127.0.0.1:{free_port()}"
        self.log = home / f"sidecar-{time.monotonic_ns()}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sidecar.cli", "run", "--incoming", str(incoming),
                 "--serving", str(home / "serving"), "--state", str(home / "state"),
                 "--engine-cache", str(home / "engines"),
                 "--model-config-file", str(home / "serving" / "models.config"),
                 "--rescan-interval-seconds", "0.2", "--store", str(store),
                 "--replica-id", replica_id, "--lease-seconds", str(LEASE),
                 "--shape-share-seconds", "1", "--admin-listen", self.admin],
                cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)

    def output(self) -> str:
        return self.log.read_text()

    def health(self, service: str) -> str:
        """The admin API's status of ``service``; "" while it does not answer."""
        assert self.process.poll() is None, self.output()[-4000:]
        try:
            with grpc.insecure_channel(self.admin) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=5)
        except grpc.RpcError:
            return ""
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def wait_up(self, timeout: float = 120) -> None:
        wait_until(lambda: self.health(STORE_HEALTH) == "SERVING", timeout,
                   f"the replica up ({self.log})")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@pytest.fixture
def started() -> Iterator[list[Sidecar]]:
    """Replicas a test starts; any left running are killed at the end."""
    running: list[Sidecar] = []
    yield running
    for sidecar in running:
        if sidecar.process.poll() is None:
            sidecar.process.kill()
            sidecar.process.wait()


def _outcomes(directory: Path) -> dict[int, str]:
    found = {}
    for generation in list_key(directory).outcomes:
        ended = read_outcome(directory, generation)
        found[generation] = ended[0].value if ended else "?"
    return found


def _renewal(lease_file: Path) -> int:
    return int(json.loads(lease_file.read_text())["renewal"])


@pytest.mark.timeout(600)
def test_a_duplicate_replica_id_is_refused_and_a_restarted_one_takes_it_back(
    tmp_path: Path, started: list[Sidecar]
) -> None:
    store, incoming = tmp_path / "store", tmp_path / "incoming"
    incoming.mkdir()
    first = Sidecar(tmp_path / "first", store, "r1", incoming)
    started.append(first)
    first.wait_up()
    claims = store / "replicas" / "r1"
    assert list_key(claims).leases == {1}
    wait_until(lambda: (store / "shapes" / "r1.json").is_file(), 30, "r1's shape counts")
    shapes_before = (store / "shapes" / "r1.json").read_bytes()

    # A second pod given the same id: refused at start, in one line, writing nothing.
    duplicate = Sidecar(tmp_path / "duplicate", store, "r1", incoming)
    started.append(duplicate)
    assert duplicate.process.wait(timeout=120) == 2, duplicate.output()[-4000:]
    (line,) = [line for line in duplicate.output().splitlines() if "error" in line]
    assert line.startswith("tftrt-sidecar: error: replica id 'r1' is in use"), line
    assert f"its lease of {LEASE} s expires in" in line, line
    assert "give each pod its own --replica-id" in line and "downward API" in line, line
    assert str(claims) in line
    assert list_key(claims).leases == {1} and _outcomes(claims) == {}
    assert not (tmp_path / "duplicate" / "serving" / "models.config").exists()
    assert first.health(STORE_HEALTH) == "SERVING"
    wait_until(lambda: (store / "shapes" / "r1.json").read_bytes() != shapes_before, 30,
               "r1 still writing its own shape counts")

    # The first pod dies without a word: its successor waits its lease out, then takes it.
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    killed_at = time.monotonic()
    successor = Sidecar(tmp_path / "first", store, "r1", incoming)
    started.append(successor)
    successor.wait_up()
    waited = time.monotonic() - killed_at
    assert waited >= LEASE, f"took the id of a replica dead for only {waited:.1f} s"
    assert _outcomes(claims) == {1: "revoked"} and list_key(claims).leases == {1, 2}
    assert "waiting up to" in successor.output()

    # A clean stop releases the id: the next one starts without waiting a lease.
    assert successor.stop() == 0, successor.output()[-4000:]
    assert _outcomes(claims) == {1: "revoked", 2: "released"}
    again = Sidecar(tmp_path / "first", store, "r1", incoming)
    started.append(again)
    again.wait_up()
    assert list_key(claims).highest == 3
    assert "waiting up to" not in again.output()
    assert again.stop() == 0, again.output()[-4000:]


@pytest.mark.timeout(600)
def test_a_store_deleted_under_a_running_replica_shows_on_health_and_is_never_recreated(
    tmp_path: Path, started: list[Sidecar]
) -> None:
    volume, incoming = tmp_path / "volume", tmp_path / "incoming"
    store, backup = volume / "store", tmp_path / "backup"
    incoming.mkdir()
    replica = Sidecar(tmp_path / "a", store, "a", incoming)
    started.append(replica)
    replica.wait_up()
    wait_until(lambda: (store / "shapes" / "a.json").is_file(), 30, "a's shape counts")

    # Deleted (moved aside, as an operator's backup): the renewals see it within a lease.
    store.rename(backup)
    wait_until(lambda: replica.health(STORE_HEALTH) == "NOT_SERVING", 30, "the store fault")
    assert replica.health("") == "SERVING", "serving goes on"
    time.sleep(2 * LEASE)  # shape writes (every second) and renewals keep trying meanwhile
    assert not store.exists(), sorted(str(p) for p in volume.rglob("*"))
    output = replica.output()
    assert "storage fault (store)" in output and f"lost its {FORMAT_FILE}" in output

    # Restored: the replica carries on by itself.
    backup.rename(store)
    wait_until(lambda: replica.health(STORE_HEALTH) == "SERVING", 30, "the fault passed")
    renewal = _renewal(store / "replicas" / "a" / "lease.1")
    wait_until(lambda: _renewal(store / "replicas" / "a" / "lease.1") > renewal, 30,
               "its claim renewed in the restored store")

    # Deleted for good: the documented step is restarting one replica on the empty place.
    # Moved away whole first: a replica writing while rmtree walked it would leave the
    # walk a directory that is not empty.
    store.rename(tmp_path / "deleted-store")
    shutil.rmtree(tmp_path / "deleted-store")
    wait_until(lambda: replica.health(STORE_HEALTH) == "NOT_SERVING", 30, "the store fault")
    time.sleep(LEASE)  # on purpose: a lease of renewals and shape writes must not recreate it
    assert not store.exists()
    other = Sidecar(tmp_path / "b", store, "b", incoming)
    started.append(other)
    other.wait_up()
    assert (store / FORMAT_FILE).is_file()
    wait_until(lambda: replica.health(STORE_HEALTH) == "SERVING", 30, "a taking up the new store")
    assert (store / "replicas" / "a" / "lease.1").is_file(), "a's claim laid down again"
    wait_until(lambda: (store / "shapes" / "a.json").is_file(), 30, "a's shape counts again")
    assert other.stop() == 0 and replica.stop() == 0, replica.output()[-4000:]
