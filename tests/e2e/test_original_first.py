"""``tftrt-sidecar run`` with Envoy and the TF Serving stand-in, serving the original first
(the default): a landed version answers clients while its conversion is held, GetModel
tells the two served numbers apart, and the converted form then takes over."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from tests.support.builders import land
from tests.support.e2e import predict_mlp
from tests.support.running_sidecar import running_sidecar
from tests.support.waiting import wait_until
from tftrt.sidecar.admin.v1 import admin_pb2 as pb
from tftrt.sidecar.admin.v1 import admin_pb2_grpc


def get_model(admin: str) -> pb.Model:
    with grpc.insecure_channel(admin) as channel:
        return admin_pb2_grpc.SidecarAdminStub(channel).GetModel(
            pb.GetModelRequest(name="mlp"), timeout=10)


@pytest.mark.timeout(400)
def test_a_landed_version_answers_while_it_converts_then_its_converted_form_takes_over(
    tmp_path: Path, mlp_model: Path
) -> None:
    incoming, serving, state = tmp_path / "incoming", tmp_path / "serving", tmp_path / "state"
    gate = tmp_path / "gate"
    gate.mkdir()
    # The conversion's job waits as it starts building engines, until the test lets it go.
    launcher = ("-m", "tests.support.gated_sidecar", str(gate), "job-building", "1")
    with running_sidecar(tmp_path, incoming=incoming, serving=serving, state=state,
                         launcher=launcher) as sidecar:
        landed = time.monotonic()
        land(mlp_model, incoming, "mlp", 1)
        sidecar.wait_serving(1000, 120)
        assert predict_mlp(sidecar.tap, 1).model_spec.version.value == 1000
        first_answer = time.monotonic() - landed

        wait_until((gate / "paused").exists, 120, "the conversion of mlp/1 building")
        held_at = time.monotonic()
        assert predict_mlp(sidecar.tap, 8).model_spec.version.value == 1000  # still served
        converting, original = get_model(sidecar.admin).versions
        assert (converting.version, converting.state) == (1001, "building")
        assert converting.takes_over_from == 1000 and converting.converted_as == 0
        assert (original.version, original.state, original.flavour) == (
            1000, "published", "original")
        assert original.converted_as == 1001 and original.in_serving
        assert "served first" in original.flavour_reason

        (gate / "resume").touch()
        resumed_at = time.monotonic()
        sidecar.wait_serving(1001, 300)
        converted_published = time.monotonic() - landed - (resumed_at - held_at)
        assert predict_mlp(sidecar.tap, 1).model_spec.version.value == 1001
        converted, original = get_model(sidecar.admin).versions
        assert (converted.version, converted.state, converted.flavour) == (
            1001, "published", "converted")
        assert original.in_serving  # kept as the converted form's rollback target
    print(f"\nlanding to first served answer {first_answer:.1f} s; landing to converted "
          f"published {converted_published:.1f} s (hold excluded)")
    assert first_answer < converted_published
