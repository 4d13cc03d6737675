"""Test-only: replicas of a fleet as real ``tftrt-sidecar run`` processes, each with its own
serving base, state, TF Serving stand-in and tap, sharing one store and one incoming base."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import grpc

from sidecar.fleet.lease import list_key, read_outcome
from sidecar.jobs.fingerprint import content_fingerprint
from sidecar.state import Job, JobJournal
from tests.support.running_sidecar import RunningSidecar, running_sidecar
from tests.support.waiting import wait_until
from tftrt.sidecar.admin.v1 import admin_pb2 as admin
from tftrt.sidecar.admin.v1 import admin_pb2_grpc as admin_grpc

MODEL = "mlp"


class Replica:
    """One started replica: its process (see :class:`RunningSidecar`) and directories."""

    def __init__(self, root: Path, name: str, sidecar: RunningSidecar) -> None:
        self.root = root
        self.name = name
        self.sidecar = sidecar

    @property
    def serving(self) -> Path:
        return self.root / "serving"

    def published(self, served: int) -> Path:
        """Where ``served`` of the test model is once published here."""
        return self.serving / MODEL / str(served)

    def job(self, served: int) -> Job | None:
        """The replica's journal entry for ``served`` (read beside the running process)."""
        with JobJournal.open(self.root / "state", clock=lambda: 0.0) as journal:
            return journal.get(MODEL, served)

    def stages(self, served: int) -> list[str]:
        """Every state the job of ``served`` went through here, in order."""
        with JobJournal.open(self.root / "state", clock=lambda: 0.0) as journal:
            return [t.to_state.value for t in journal.history(MODEL, served)]

    def wait_published(self, served: int, timeout: float = 240) -> None:
        wait_until(lambda: self._published_or_dead(served), timeout,
                   f"replica {self.name} publishing {MODEL}/{served}")

    def _published_or_dead(self, served: int) -> bool:
        assert self.sidecar.alive(), self.sidecar.output()[-4000:]
        return self.published(served).is_dir()

    def fleet_publishes(self, origin: str) -> float:
        """``tftrt_sidecar_fleet_publishes`` of the test model by ``origin``."""
        return self.sidecar.metric("tftrt_sidecar_fleet_publishes_total", model=MODEL,
                                   origin=origin) or 0.0

    def origin(self, served: int) -> tuple[str, bool]:
        """``GetModel``'s (built_by, installed_from_store) of ``served``, over the admin API."""
        with grpc.insecure_channel(self.sidecar.admin) as channel:
            model = admin_grpc.SidecarAdminStub(channel).GetModel(
                admin.GetModelRequest(name=MODEL), timeout=10)
        (version,) = [v for v in model.versions if v.version == served]
        return version.built_by, version.installed_from_store

    def batch_sizes_seen(self) -> set[int]:
        """The batch sizes in ``GetShapeStatistics`` of the test model, over the admin API."""
        with grpc.insecure_channel(self.sidecar.admin) as channel:
            stats = admin_grpc.SidecarAdminStub(channel).GetShapeStatistics(
                admin.GetShapeStatisticsRequest(model=MODEL, limit=20), timeout=10)
        return {entry.shape_set.inputs[0].dims[0] for signature in stats.signatures
                for entry in signature.top}

    def signal(self, number: signal.Signals) -> None:
        os.kill(self.sidecar.process.pid, number)


@contextmanager
def replica(
    root: Path, name: str, *, incoming: Path, store: Path, lease_seconds: float = 4.0,
    extra: Sequence[str] = (), launcher: Sequence[str] = ("-m", "sidecar.cli"),
) -> Iterator[Replica]:
    """Start replica ``name`` under ``root/name`` (stopped with SIGTERM afterwards)."""
    home = root / name
    home.mkdir(parents=True, exist_ok=True)
    with running_sidecar(
        home, incoming=incoming, serving=home / "serving", state=home / "state",
        extra=["--store", str(store), "--replica-id", name, "--lease-seconds",
               str(lease_seconds), "--shape-share-seconds", "1", *extra],
        launcher=launcher,
    ) as sidecar:
        yield Replica(home, name, sidecar)


def outcomes(key_dir: Path) -> dict[int, str]:
    """Each generation's outcome in a key's store directory (complete, revoked, released)."""
    found = {}
    for generation in list_key(key_dir).outcomes:
        ended = read_outcome(key_dir, generation)
        found[generation] = ended[0].value if ended else "?"
    return found


def key_dirs(store: Path, served: int) -> list[Path]:
    """The store's directories of the test model's ``served`` version, one per namespace."""
    return sorted(store.glob(f"keys/tf-*/*/{MODEL}/{served}"))


def same_bytes(*versions: Path) -> bool:
    """Whether the version trees hold the same names and bytes."""
    return len({content_fingerprint(version) for version in versions}) == 1
