"""Odd names and numbers through the real admin API over a socket (issue 12, items 6-8 and
the error echoes): the admin API agrees with what discovery serves and refuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import pytest

from sidecar.tfserving.numbering import MAX_INCOMING_VERSION, served_version
from tests.admin.conftest import AdminStand
from tests.support.models import build_tiny_saved_model
from tftrt.sidecar.admin.v1 import admin_pb2 as pb

EPOCH_MICROSECONDS = 1_764_547_200_000_000


def _error(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_a_nineteen_digit_version_is_listed_shown_and_rolled_back(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    stub = stand.stub(channel)
    tiny = build_tiny_saved_model(stand.root / "tiny")
    first, second = served_version(EPOCH_MICROSECONDS), served_version(EPOCH_MICROSECONDS + 1)
    for version in (first, second):
        stand.publisher.publish_copy("clock", version, tiny)
    [summary] = stub.ListModels(pb.ListModelsRequest(), timeout=10).models
    assert (summary.name, list(summary.serving_versions)) == ("clock", [first, second])
    model = stub.GetModel(pb.GetModelRequest(name="clock"), timeout=10)
    assert [(v.version, v.in_serving) for v in model.versions] == [(second, True), (first, True)]
    rolled = stub.RollBack(pb.RollBackRequest(model="clock"), timeout=10)
    assert (rolled.rolled_back_version, rolled.now_serving_version) == (second, first)


def test_refused_incoming_directories_are_listed_with_their_reasons(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    too_big = str(MAX_INCOMING_VERSION + 1)
    for relative in ["mlp/0007", "mlp/7", "my model/1", f"mlp/{too_big}", "mlp/3", "mlp/0004"]:
        (stand.incoming / relative).mkdir(parents=True)
    answer = stand.stub(channel).ListModels(pb.ListModelsRequest(), timeout=10)
    refused = {str(Path(r.path).relative_to(stand.incoming)): r.reason for r in answer.refused}
    assert set(refused) == {"mlp/0007", "mlp/7", "my model", f"mlp/{too_big}"}
    assert "'0007' and '7' both stand for version 7" in refused["mlp/0007"]
    assert "ASCII letters" in refused["my model"]
    assert "int64" in refused[f"mlp/{too_big}"]


def test_converting_a_version_two_names_stand_for_says_why_it_is_refused(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    (stand.incoming / "mlp" / "0007").mkdir(parents=True)
    (stand.incoming / "mlp" / "7").mkdir(parents=True)
    request = pb.StartConversionRequest(model="mlp", version=7)
    error = _error(lambda: stand.stub(channel).StartConversion(request, timeout=10))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "'0007' and '7' both stand for version 7" in error.details()
    assert "TF Serving itself would serve '7'" in error.details()
    missing = pb.StartConversionRequest(model="mlp", version=8)
    assert _error(lambda: stand.stub(channel).StartConversion(missing, timeout=10)).code() \
        is grpc.StatusCode.NOT_FOUND


def test_converting_a_version_linked_from_outside_the_incoming_base_is_refused(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    elsewhere = stand.root / "elsewhere" / "5"
    shutil.copytree(stand.model, elsewhere)
    (stand.incoming / "mlp").mkdir(parents=True)
    (stand.incoming / "mlp" / "5").symlink_to(elsewhere)
    request = pb.StartConversionRequest(model="mlp", version=5)
    error = _error(lambda: stand.stub(channel).StartConversion(request, timeout=10))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "symbolic link leading outside the incoming base" in error.details()


@pytest.mark.parametrize("name", ["my model", "café", "x" * 10_000])
def test_model_names_outside_the_rule_are_invalid_argument_with_a_short_message(
    stand: AdminStand, channel: grpc.Channel, name: str
) -> None:
    stub = stand.stub(channel)
    calls = [
        lambda: stub.GetModel(pb.GetModelRequest(name=name), timeout=10),
        lambda: stub.StartConversion(pb.StartConversionRequest(model=name, version=1),
                                     timeout=10),
        lambda: stub.PauseModel(pb.PauseModelRequest(model=name), timeout=10),
        lambda: stub.RollBack(pb.RollBackRequest(model=name), timeout=10),
    ]
    for call in calls:
        error = _error(call)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert "ASCII letters" in error.details()
        assert len(error.details()) < 400, "the bad value is not echoed whole"


def test_incoming_versions_out_of_range_are_invalid_argument_naming_the_range(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    request = pb.StartConversionRequest(model="mlp", version=MAX_INCOMING_VERSION + 1)
    error = _error(lambda: stand.stub(channel).StartConversion(request, timeout=10))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"from 0 to {MAX_INCOMING_VERSION}" in error.details()
