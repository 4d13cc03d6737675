"""What clients can do through the tap (Envoy) of a running ``tftrt-sidecar run``: a client
that tries to reconfigure TF Serving is refused and counted, while other clients' traffic
goes on being served and TF Serving keeps the sidecar's model list."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
)

from tests.support.builders import land
from tests.support.running_sidecar import Traffic, running_sidecar
from tests.support.waiting import wait_until


def _status(address: str, model: str) -> grpc.StatusCode:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    with grpc.insecure_channel(address) as channel:
        try:
            model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_a_client_cannot_replace_the_served_model_list(tmp_path: Path, mlp_model: Path) -> None:
    incoming, serving = tmp_path / "incoming", tmp_path / "serving"
    land(mlp_model, incoming, "mlp", 1)
    with running_sidecar(tmp_path, incoming=incoming, serving=serving,
                         state=tmp_path / "state") as sidecar:
        sidecar.wait_serving(1000, 180)
        hostile = model_management_pb2.ReloadConfigRequest()
        evil = hostile.config.model_config_list.config.add()
        evil.name, evil.base_path = "mlp", str(tmp_path / "chosen-by-the-client")
        with Traffic(sidecar.tap) as traffic:
            wait_until(lambda: traffic.served >= 5, 60, "traffic through the tap")
            with grpc.insecure_channel(sidecar.tap) as channel:
                models = model_service_pb2_grpc.ModelServiceStub(channel)
                for _ in range(3):
                    with pytest.raises(grpc.RpcError) as refused:
                        models.HandleReloadConfigRequest(hostile, timeout=10)
                    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            served = traffic.served
            wait_until(lambda: traffic.served >= served + 5, 60, "traffic after the refusals")
        assert traffic.failures == []
        assert _status(sidecar.tap, "mlp") == grpc.StatusCode.OK  # allowed, and answered
        wait_until(lambda: sidecar.proxy_metric("envoy_http_rq_direct_response",
                                                envoy_http_conn_manager_prefix="tftrt_grpc") == 3,
                   10, "the refusals in Envoy's stats")
        assert "HandleReloadConfigRequest" not in {c.method for c in sidecar.standin.calls()}
        assert sidecar.standin.version_states("mlp") == {1000: "AVAILABLE"}
