"""`build_service`: what `tftrt-sidecar run` starts, from its settings."""

from __future__ import annotations

import socket
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.base.errors import ConfigError
from sidecar.config import load_settings
from sidecar.service.wiring import build_service
from tests.support.waiting import wait_until
from tftrt.sidecar.admin.v1 import admin_pb2, admin_pb2_grpc


def _free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def test_admin_api_from_settings_needs_its_token_and_is_ready_after_start(
        tmp_path: Path) -> None:
    (tmp_path / "token").write_text("0123456789abcdef-s3cret\n")
    address = _free_address()
    settings = load_settings({  # flags, by their argparse names
        "state": str(tmp_path / "state"), "serving": str(tmp_path / "serving"),
        "incoming": str(tmp_path / "incoming"), "admin_listen": address,
        "admin_token_file": str(tmp_path / "token"), "shutdown_grace_seconds": "1",
    }, {})
    assert settings.paths.state_dir == tmp_path / "state"
    parts = build_service(settings)
    assert parts.admin is not None
    for component in parts.background:
        component.start()
    try:
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING  # not started yet
            parts.admin.mark_ready()
            # The server's readiness thread reports it within a poll of being ready.
            wait_until(lambda: health.Check(health_pb2.HealthCheckRequest(service=""),
                                            timeout=5).status, 10, "health SERVING",
                       done=lambda status: status == health_pb2.HealthCheckResponse.SERVING)
            admin = admin_pb2_grpc.SidecarAdminStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                admin.ListModels(admin_pb2.ListModelsRequest(), timeout=5,
                                 metadata=[("authorization", "Bearer wrong")])
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
            admin.ListModels(admin_pb2.ListModelsRequest(), timeout=5,
                             metadata=[("authorization", "Bearer 0123456789abcdef-s3cret")])
    finally:
        for component in reversed(parts.background):
            component.stop()


def test_an_unreadable_token_file_is_a_config_error_before_anything_is_built(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="admin_token_file"):
        load_settings({
            "state": str(tmp_path / "state"), "admin_listen": _free_address(),
            "admin_token_file": str(tmp_path / "missing"),
        }, {})
    assert not (tmp_path / "state").exists()
