"""Fixtures of the admin API tests: a real sidecar state on temporary directories, the
admin server on a free 127.0.0.1 port, and a stub talking to it over a real socket."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from sidecar.admin.server import AdminServer, start_admin_server
from sidecar.admin.settings import AdminSettings
from sidecar.admin.sidecar_backend import BackendDependencies, SidecarAdminBackend
from sidecar.config import Address, ModelPolicy
from sidecar.jobs import JobDependencies
from sidecar.publish import VersionPublisher
from sidecar.publish.published import PublishedModels
from sidecar.shapes import ShapeStore, ShapeStoreSettings
from sidecar.state import JobJournal
from sidecar.state.controls import ModelControls
from tests.admin.certs import Certificates, make_certificates
from tests.admin.runner import ServiceJobRunner
from tests.support.waiting import wait_until
from tftrt.sidecar.admin.v1 import admin_pb2_grpc

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A test CA with server and client certificates."""
    return make_certificates(tmp_path_factory.mktemp("pki"))


@dataclass
class AdminStand:
    """A sidecar's state on temporary directories with the admin API serving it."""

    root: Path
    journal: JobJournal
    publisher: VersionPublisher
    shapes: ShapeStore
    controls: ModelControls
    published: PublishedModels
    runner: ServiceJobRunner
    backend: SidecarAdminBackend
    server: AdminServer
    model: Path

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def land(self, model: str, version: int, source: Path | None = None) -> Path:
        """Copy a SavedModel into the incoming base as ``model/version``."""
        target = self.incoming / model / str(version)
        shutil.copytree(source or self.model, target)
        return target

    def stub(self, channel: grpc.Channel) -> admin_pb2_grpc.SidecarAdminStub:
        return admin_pb2_grpc.SidecarAdminStub(channel)


def build_stand(root: Path, model: Path, settings: AdminSettings, ready: bool = True) -> AdminStand:
    """Everything real: journal, publisher, shape store, controls, the job runner, the server."""
    journal = JobJournal.open(root / "state", clock=time.time)
    publisher = VersionPublisher(root / "serving")
    shapes = ShapeStore(root / "state", ShapeStoreSettings(), time.time)
    controls = ModelControls.open(root / "state")
    published = PublishedModels(root / "serving", refresh_seconds=0.0)
    (root / "incoming").mkdir(parents=True, exist_ok=True)
    runner = ServiceJobRunner(JobDependencies(
        journal=journal, publisher=publisher, incoming_base=root / "incoming",
        engine_cache_dir=root / "engine-cache", shape_source=shapes,
    ))
    backend = SidecarAdminBackend(BackendDependencies(
        journal=journal, published=published, controls=controls,
        # The runner runs each requested job alone (no service loop runs a queued
        # conversion), so each version is built once, at its number.
        incoming_base=root / "incoming",
        policy_for=lambda _: ModelPolicy(serve_original_first=False),
        submit=runner.submit, on_loop=runner.call, shape_store=shapes,
    ))
    server = start_admin_server(settings, backend)
    if ready:
        backend.mark_ready()
        wait_until(lambda: server.serving, 10, "the admin server serving")
    return AdminStand(root, journal, publisher, shapes, controls, published, runner, backend,
                      server, model)


def close_stand(stand: AdminStand) -> None:
    """Stop the server and the runner, close the databases."""
    stand.server.stop(1)
    stand.runner.close()
    stand.shapes.close()
    stand.journal.close()


@pytest.fixture()
def stand(tmp_path: Path, mlp_model: Path) -> Iterator[AdminStand]:
    """A ready admin API without TLS or token."""
    built = build_stand(tmp_path, mlp_model, AdminSettings(listen=Address("127.0.0.1", 0)))
    yield built
    close_stand(built)


@pytest.fixture()
def channel(stand: AdminStand) -> Iterator[grpc.Channel]:
    """A plaintext channel to the stand's admin API."""
    with grpc.insecure_channel(stand.address) as opened:
        yield opened
