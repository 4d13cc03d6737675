"""The admin server's edges over real sockets: health states, reflection, bearer token,
TLS and mutual TLS, settings validation, graceful stop, and the status table."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sidecar.admin.errors import AdminSettingsError, NotFoundError
from sidecar.admin.servicer import SERVICE_NAME
from sidecar.admin.settings import AdminSettings
from sidecar.admin.status import STATUS_BY_ERROR, status_for
from sidecar.base.errors import (
    OnlyServableVersionError,
    SidecarError,
    StorageError,
    UserError,
    VersionAlreadyPublishedError,
)
from sidecar.config import Address
from tests.admin.certs import Certificates
from tests.admin.conftest import TOKEN, AdminStand, build_stand, close_stand
from tests.support.waiting import wait_until
from tftrt.sidecar.admin.v1 import admin_pb2 as pb
from tftrt.sidecar.admin.v1 import admin_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _health(channel: grpc.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


@pytest.fixture()
def unready(tmp_path: Path, mlp_model: Path) -> Iterator[AdminStand]:
    built = build_stand(tmp_path, mlp_model, AdminSettings(listen=Address("127.0.0.1", 0)),
                        ready=False)
    yield built
    close_stand(built)


def test_health_is_not_serving_until_ready_and_again_while_stopping(
    unready: AdminStand,
) -> None:
    with grpc.insecure_channel(unready.address) as channel:
        assert _health(channel) == NOT_SERVING
        assert _health(channel, SERVICE_NAME) == NOT_SERVING
        admin = admin_pb2_grpc.SidecarAdminStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            admin.ListModels(pb.ListModelsRequest(), timeout=5)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "loading its state" in caught.value.details()

        unready.backend.mark_ready()
        wait_until(lambda: _health(channel) == SERVING, 10, "overall health SERVING")
        assert _health(channel, SERVICE_NAME) == SERVING
        assert admin.ListModels(pb.ListModelsRequest(), timeout=5).models == []
        with pytest.raises(grpc.RpcError) as unknown:
            _health(channel, "no.such.Service")
        assert unknown.value.code() is grpc.StatusCode.NOT_FOUND

        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=20)
        assert next(watch).status == SERVING
        stopper = threading.Thread(target=unready.server.stop, args=(3,))
        stopper.start()
        assert next(watch).status == NOT_SERVING, "health says NOT_SERVING during shutdown"
        stopper.join(10)
        assert unready.server.wait_for_termination(0)
        with pytest.raises(grpc.RpcError) as gone:
            admin.ListModels(pb.ListModelsRequest(), timeout=2)
        assert gone.value.code() is grpc.StatusCode.UNAVAILABLE


def test_stop_lets_a_running_call_finish_within_the_grace_period(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    started, release = threading.Event(), threading.Event()
    original = stand.backend.list_models

    def slow_list() -> object:
        started.set()
        release.wait(5)
        return original()

    stand.backend.list_models = slow_list  # type: ignore[assignment, method-assign]
    answer: list[object] = []
    caller = threading.Thread(target=lambda: answer.append(
        stand.stub(channel).ListModels(pb.ListModelsRequest(), timeout=10)))
    caller.start()
    assert started.wait(5)
    stopper = threading.Thread(target=stand.server.stop, args=(5,))
    stopper.start()
    release.set()
    caller.join(10)
    stopper.join(10)
    assert len(answer) == 1, "the call in flight was answered"


def test_reflection_lists_every_service(stand: AdminStand, channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    [answer] = list(stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
    names = {service.name for service in answer.list_services_response.service}
    assert names == {SERVICE_NAME, "grpc.health.v1.Health",
                     "grpc.reflection.v1alpha.ServerReflection"}
    [described] = list(stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME)]),
        timeout=5))
    assert described.file_descriptor_response.file_descriptor_proto


@pytest.fixture()
def with_token(tmp_path: Path, mlp_model: Path) -> Iterator[AdminStand]:
    built = build_stand(tmp_path, mlp_model,
                        AdminSettings(listen=Address("127.0.0.1", 0), token=TOKEN))
    yield built
    close_stand(built)


def test_bearer_token_is_required_except_for_health(with_token: AdminStand) -> None:
    with grpc.insecure_channel(with_token.address) as channel:
        admin = admin_pb2_grpc.SidecarAdminStub(channel)
        request = pb.ListModelsRequest()
        for metadata in ([], [("authorization", "Bearer wrong-token-0123456789")],
                         [("authorization", TOKEN)], [("authorization", f"bearer {TOKEN}")]):
            with pytest.raises(grpc.RpcError) as caught:
                admin.ListModels(request, timeout=5, metadata=metadata)
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "no bearer token" in _details(admin, [])
        assert "wrong bearer token" in _details(admin, [("authorization", "Bearer nope")])
        good = [("authorization", f"Bearer {TOKEN}")]
        assert admin.ListModels(request, timeout=5, metadata=good).models == []
        assert _health(channel) == SERVING, "kubelet probes carry no token"
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        listed = list(reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5,
            metadata=good))
        assert listed


def _details(admin: admin_pb2_grpc.SidecarAdminStub, metadata: list[tuple[str, str]]) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        admin.ListModels(pb.ListModelsRequest(), timeout=5, metadata=metadata)
    return str(caught.value.details())


def test_tls_serves_only_tls_clients_that_trust_its_ca(
    tmp_path: Path, mlp_model: Path, certificates: Certificates
) -> None:
    settings = AdminSettings(listen=Address("127.0.0.1", 0), tls_cert_file=certificates.server_cert,
                             tls_key_file=certificates.server_key)
    built = build_stand(tmp_path, mlp_model, settings)
    try:
        trusted = grpc.ssl_channel_credentials(certificates.ca.read_bytes())
        with grpc.secure_channel(built.address, trusted) as channel:
            admin = admin_pb2_grpc.SidecarAdminStub(channel)
            assert admin.ListModels(pb.ListModelsRequest(), timeout=5).models == []
        untrusted = grpc.ssl_channel_credentials(certificates.other_ca.read_bytes())
        with grpc.secure_channel(built.address, untrusted) as channel:
            assert _fails(channel)
        with grpc.insecure_channel(built.address) as channel:
            assert _fails(channel)
    finally:
        close_stand(built)


def test_mutual_tls_needs_a_client_certificate_signed_by_the_client_ca(
    tmp_path: Path, mlp_model: Path, certificates: Certificates
) -> None:
    settings = AdminSettings(
        listen=Address("127.0.0.1", 0), tls_cert_file=certificates.server_cert,
        tls_key_file=certificates.server_key, tls_client_ca_file=certificates.ca,
    )
    built = build_stand(tmp_path, mlp_model, settings)
    try:
        ca = certificates.ca.read_bytes()
        with grpc.secure_channel(built.address, grpc.ssl_channel_credentials(ca)) as channel:
            assert _fails(channel)
        with_cert = grpc.ssl_channel_credentials(
            ca, certificates.client_key.read_bytes(), certificates.client_cert.read_bytes())
        with grpc.secure_channel(built.address, with_cert) as channel:
            admin = admin_pb2_grpc.SidecarAdminStub(channel)
            assert admin.ListModels(pb.ListModelsRequest(), timeout=5).models == []
    finally:
        close_stand(built)


def _fails(channel: grpc.Channel) -> bool:
    admin = admin_pb2_grpc.SidecarAdminStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        admin.ListModels(pb.ListModelsRequest(), timeout=3)
    return caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_the_servers_own_knobs_are_validated_and_the_token_is_not_shown() -> None:
    # The address, the TLS files and the token come checked from load_settings
    # (tests/config/test_config_sections.py); only the server's own knobs are checked here.
    with pytest.raises(AdminSettingsError, match=r"AdminSettings\.max_workers"):
        AdminSettings(max_workers=0)
    assert TOKEN not in repr(AdminSettings(token=TOKEN))


def test_taken_port_is_reported(stand: AdminStand) -> None:
    from sidecar.admin.server import AdminServer

    second = AdminServer(AdminSettings(listen=Address.parse(stand.address, "address")),
                         stand.backend)
    with pytest.raises(AdminSettingsError, match="cannot be listened on"):
        second.start()


def test_each_component_has_its_own_health_status(stand: AdminStand) -> None:
    from sidecar.admin.server import AdminServer

    tap_up = threading.Event()
    server = AdminServer(AdminSettings(listen=Address("127.0.0.1", 0)), stand.backend,
                         {"tftrt.sidecar.Tap": tap_up.is_set})
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            wait_until(lambda: _health(channel) == SERVING, 10, "overall health SERVING")
            assert _health(channel, "tftrt.sidecar.Tap") == NOT_SERVING
            tap_up.set()
            wait_until(lambda: _health(channel, "tftrt.sidecar.Tap") == SERVING, 10,
                       "the tap's health SERVING")
            tap_up.clear()  # its process died; it is being restarted
            wait_until(lambda: _health(channel, "tftrt.sidecar.Tap") == NOT_SERVING, 10,
                       "the tap's health NOT_SERVING")
            assert _health(channel) == SERVING  # the admin API itself is still fine
    finally:
        server.stop(1)


def test_status_table_maps_the_hierarchy_most_specific_first() -> None:
    assert status_for(NotFoundError("x")) is grpc.StatusCode.NOT_FOUND
    assert status_for(VersionAlreadyPublishedError("m", 1, "/p")) is grpc.StatusCode.ALREADY_EXISTS
    assert status_for(OnlyServableVersionError("m", 1, "roll back", "/p")) \
        is grpc.StatusCode.FAILED_PRECONDITION
    assert status_for(UserError("x")) is grpc.StatusCode.FAILED_PRECONDITION
    assert status_for(StorageError("disk full")) is grpc.StatusCode.UNAVAILABLE
    assert status_for(SidecarError("x")) is grpc.StatusCode.INTERNAL
    assert status_for(RuntimeError("bug")) is grpc.StatusCode.INTERNAL
    assert all(isinstance(code, grpc.StatusCode) for code in STATUS_BY_ERROR.values())


def test_storage_and_unexpected_errors_reach_clients_through_the_table(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    admin = stand.stub(channel)
    stand.journal.close()
    with pytest.raises(grpc.RpcError) as caught:
        admin.ListModels(pb.ListModelsRequest(), timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE, "StorageError is retryable"
    assert "job" in caught.value.details()

    def broken(model: str) -> object:
        raise KeyError(model)

    stand.backend.resume = broken  # type: ignore[assignment, method-assign]
    with pytest.raises(grpc.RpcError) as caught:
        admin.ResumeModel(pb.ResumeModelRequest(model="m"), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal error: KeyError: 'm'"
