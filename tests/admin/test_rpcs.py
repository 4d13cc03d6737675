"""Every SidecarAdmin RPC over a real socket against real journal, serving base and shapes.

StartConversion takes the INCOMING version; operations, the journal and the serving
base name SERVED versions (incoming N is served as ``served_version(N)`` = N * 1000,
its rebuilds as N * 1000 + 1, + 2, ...).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from sidecar.shapes import ShapeObservation, ShapeSet, TensorSpec
from sidecar.state import JobState
from sidecar.state.controls import ModelControls
from sidecar.tfserving.numbering import MAX_INCOMING_VERSION, served_version
from tests.admin.conftest import AdminStand
from tests.support.disks import tree_listing
from tests.support.models import build_tiny_saved_model
from tests.support.waiting import wait_until
from tftrt.sidecar.admin.v1 import admin_pb2 as pb

JOB_TIMEOUT = 120.0


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


def _wait_done(stub: Any, name: str) -> pb.Operation:
    def done() -> pb.Operation | None:
        op = stub.GetOperation(pb.GetOperationRequest(name=name), timeout=10)
        return op if op.done else None

    return wait_until(done, JOB_TIMEOUT, f"{name} done", interval=0.2)


def test_conversion_runs_and_the_model_shows_versions_engines_and_timings(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    stub = stand.stub(channel)
    stand.land("mlp", 1)
    started = stub.StartConversion(pb.StartConversionRequest(model="mlp", version=1), timeout=10)
    assert started.name.startswith("operations/mlp-1000-")
    assert started.metadata.model == "mlp" and started.metadata.version == served_version(1)
    assert not started.metadata.rebuild

    finished = _wait_done(stub, started.name)
    assert finished.HasField("response")
    assert finished.response.state == "published"
    assert finished.metadata.progress == "done"

    model = stub.GetModel(pb.GetModelRequest(name="mlp"), timeout=10)
    [version] = model.versions
    assert (version.version, version.state, version.in_serving) == (1000, "published", True)
    assert (version.incoming_version, version.rebuild) == (1, 0)
    assert version.flavour in ("converted", "original")
    stages = {t.stage for t in version.stage_timings}
    assert {"discovered", "converting"} <= stages
    if version.flavour == "converted":
        assert version.engines, "a converted version lists the engines compiled for it"
        assert all(e.compile_seconds > 0 for e in version.engines)
        assert version.backend == "xla" and version.device
        assert version.backend_reason.startswith("auto: TF-TRT unavailable")
        # The converter's measured choice among its candidates, and why it won.
        assert version.candidate in ("original", "frozen", "frozen+xla", "xla")
        assert version.candidate_reason
        # What it computes in (an FP32 policy: float32 only) and its accuracy check: the
        # MLP's softmax scores by top-1 agreement, on the replay inputs (nothing recorded).
        assert version.precision == "FP32" and "FP32 only" in version.precision_reason
        accuracy = version.accuracy
        assert accuracy.compared_on == "replay inputs" and accuracy.compared == 2
        assert accuracy.top1_agreement == 1.0 and accuracy.top1_rows == 9
        assert accuracy.min_top1_agreement == 0.99
    assert model.policy.max_engines == 4 and model.policy.precision == "FP32"

    listed = stub.ListModels(pb.ListModelsRequest(), timeout=10)
    [summary] = listed.models
    assert summary.name == "mlp" and list(summary.serving_versions) == [1000]
    assert summary.versions_by_state["published"] == 1

    operations = stub.ListOperations(pb.ListOperationsRequest(), timeout=10)
    assert [op.name for op in operations.operations] == [started.name]


def test_published_versions_are_final_and_a_rebuild_takes_the_next_served_number(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    stub = stand.stub(channel)
    stand.land("mlp", 1)
    op = stub.StartConversion(pb.StartConversionRequest(model="mlp", version=1), timeout=10)
    assert _wait_done(stub, op.name).response.state == "published"
    first = stand.root / "serving" / "mlp" / str(served_version(1))
    before = tree_listing(first)

    again = pb.StartConversionRequest(model="mlp", version=1)
    with pytest.raises(grpc.RpcError) as caught:
        stub.StartConversion(again, timeout=10)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "published" in caught.value.details() and "rebuild" in caught.value.details()

    for generation in (1, 2):
        rebuild = stub.StartConversion(
            pb.StartConversionRequest(model="mlp", version=1, rebuild=True), timeout=10)
        served = served_version(1, generation)
        assert rebuild.metadata.rebuild and rebuild.metadata.version == served
        assert rebuild.name.startswith(f"operations/mlp-{served}-")
        done = _wait_done(stub, rebuild.name)
        assert done.response.state == "published"
        assert (done.response.version, done.response.incoming_version,
                done.response.rebuild) == (served, 1, generation)
        job = stand.journal.get("mlp", served)
        assert job is not None and job.state is JobState.PUBLISHED and job.attempts == 1
        queued = stand.journal.history("mlp", served)[0]
        assert queued.to_state is JobState.DISCOVERED
        assert queued.reason == "rebuild requested through the admin API"
    assert stand.publisher.published_versions("mlp") == [1000, 1001, 1002]
    assert tree_listing(first) == before, "the first build stays as it was"
    job = stand.journal.get("mlp", served_version(1))
    assert job is not None and job.state is JobState.PUBLISHED and job.attempts == 1


def test_failed_conversion_is_an_operation_error_and_rebuild_runs_it_again(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    stub = stand.stub(channel)
    broken = stand.land("broken", 3)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    op = stub.StartConversion(pb.StartConversionRequest(model="broken", version=3), timeout=10)
    assert op.metadata.version == served_version(3)
    done = _wait_done(stub, op.name)
    assert done.HasField("error")
    assert done.error.code == grpc.StatusCode.ABORTED.value[0]
    assert "broken" in done.error.message or "saved_model" in done.error.message.lower()
    assert done.metadata.state == "failed"

    retry = pb.StartConversionRequest(model="broken", version=3)
    assert _code(lambda: stub.StartConversion(retry, timeout=10)) \
        is grpc.StatusCode.FAILED_PRECONDITION
    rebuild = stub.StartConversion(
        pb.StartConversionRequest(model="broken", version=3, rebuild=True), timeout=10)
    assert rebuild.metadata.rebuild
    assert rebuild.metadata.version == served_version(3), "restarted under the same number"
    _wait_done(stub, rebuild.name)
    job = stand.journal.get("broken", served_version(3))
    assert job is not None and job.attempts == 2 and job.state is JobState.FAILED
    assert [j.version for j in stand.journal.jobs(model="broken")] == [served_version(3)]


def test_queued_operation_cancels_and_running_one_does_not(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    stub = stand.stub(channel)
    stand.land("mlp", 1)
    stand.land("mlp", 2)
    stand.runner.gate.clear()
    first = stub.StartConversion(pb.StartConversionRequest(model="mlp", version=1), timeout=10)
    assert stand.runner.started.wait(10)
    second = stub.StartConversion(pb.StartConversionRequest(model="mlp", version=2), timeout=10)
    assert second.metadata.progress == "queued"

    duplicate = pb.StartConversionRequest(model="mlp", version=1)
    assert _code(lambda: stub.StartConversion(duplicate, timeout=10)) \
        is grpc.StatusCode.ALREADY_EXISTS
    cancelled = stub.CancelOperation(pb.CancelOperationRequest(name=second.name), timeout=10)
    assert cancelled.done and cancelled.error.code == grpc.StatusCode.CANCELLED.value[0]
    running = pb.CancelOperationRequest(name=first.name)
    assert _code(lambda: stub.CancelOperation(running, timeout=10)) \
        is grpc.StatusCode.FAILED_PRECONDITION

    stand.runner.gate.set()
    assert _wait_done(stub, first.name).response.state == "published"
    assert stand.journal.get("mlp", served_version(2)) is None, \
        "the cancelled conversion never ran"
    listed = stub.ListOperations(pb.ListOperationsRequest(model="mlp", page_size=1), timeout=10)
    assert [op.name for op in listed.operations] == [second.name]
    rest = stub.ListOperations(
        pb.ListOperationsRequest(model="mlp", page_size=1, page_token=listed.next_page_token),
        timeout=10)
    assert [op.name for op in rest.operations] == [first.name] and not rest.next_page_token


def test_invalid_requests_are_invalid_argument(stand: AdminStand, channel: grpc.Channel) -> None:
    stub = stand.stub(channel)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    calls = [
        lambda: stub.GetModel(pb.GetModelRequest(name="../etc"), timeout=10),
        lambda: stub.GetModel(pb.GetModelRequest(name=""), timeout=10),
        lambda: stub.GetModel(pb.GetModelRequest(name="a/b"), timeout=10),
        lambda: stub.GetModel(pb.GetModelRequest(name="x" * 129), timeout=10),
        lambda: stub.StartConversion(pb.StartConversionRequest(
            model="mlp", version=MAX_INCOMING_VERSION + 1), timeout=10),
        lambda: stub.StartConversion(pb.StartConversionRequest(model="mlp", version=-4),
                                     timeout=10),
        lambda: stub.StartConversion(pb.StartConversionRequest(
            model="mlp", version=1, overrides=pb.PolicyOverrides(precision="FP8")), timeout=10),
        lambda: stub.SetModelPolicy(pb.SetModelPolicyRequest(
            model="mlp", overrides=pb.PolicyOverrides(max_engines=0)), timeout=10),
        lambda: stub.SetModelPolicy(pb.SetModelPolicyRequest(
            model="mlp", overrides=pb.PolicyOverrides(max_engines=5000)), timeout=10),
        lambda: stub.SetModelPolicy(pb.SetModelPolicyRequest(
            model="mlp", overrides=pb.PolicyOverrides(backend="onnx")), timeout=10),
        lambda: stub.SetModelPolicy(pb.SetModelPolicyRequest(
            model="mlp", overrides=pb.PolicyOverrides(default_batch_sizes=[4, 4])), timeout=10),
        lambda: stub.GetOperation(pb.GetOperationRequest(name="m-1-abc"), timeout=10),
        lambda: stub.GetOperation(pb.GetOperationRequest(name="operations/../x y"), timeout=10),
        lambda: stub.ListOperations(pb.ListOperationsRequest(page_size=-1), timeout=10),
        lambda: stub.ListOperations(pb.ListOperationsRequest(page_token="x"), timeout=10),
        lambda: stub.GetShapeStatistics(pb.GetShapeStatisticsRequest(model="mlp", limit=-2),
                                        timeout=10),
        lambda: stub.RollBack(pb.RollBackRequest(model=".."), timeout=10),
        lambda: stub.PauseModel(pb.PauseModelRequest(model="mlp", reason="x" * 2000), timeout=10),
        lambda: stub.RollBack(pb.RollBackRequest(model="mlp", reason="x" * 2000), timeout=10),
    ]
    assert [_code(call) for call in calls] == [invalid] * len(calls)
    with pytest.raises(grpc.RpcError) as caught:
        stub.SetModelPolicy(pb.SetModelPolicyRequest(
            model="mlp", overrides=pb.PolicyOverrides(precision="FP8")), timeout=10)
    assert "precision" in caught.value.details() and "FP16" in caught.value.details()


def test_unknown_things_are_not_found(stand: AdminStand, channel: grpc.Channel) -> None:
    stub = stand.stub(channel)
    not_found = grpc.StatusCode.NOT_FOUND
    calls = [
        lambda: stub.GetModel(pb.GetModelRequest(name="nope"), timeout=10),
        lambda: stub.StartConversion(pb.StartConversionRequest(model="nope", version=1),
                                     timeout=10),
        lambda: stub.GetOperation(pb.GetOperationRequest(name="operations/nope-1-0000"),
                                  timeout=10),
        lambda: stub.CancelOperation(pb.CancelOperationRequest(name="operations/nope-1-0000"),
                                     timeout=10),
        lambda: stub.GetShapeStatistics(pb.GetShapeStatisticsRequest(model="nope"), timeout=10),
        lambda: stub.RollBack(pb.RollBackRequest(model="nope"), timeout=10),
    ]
    assert [_code(call) for call in calls] == [not_found] * len(calls)


def test_symlinked_model_directory_cannot_escape(
    stand: AdminStand, channel: grpc.Channel, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    (outside / "1").mkdir(parents=True)
    (stand.incoming / "escape").symlink_to(outside)
    request = pb.StartConversionRequest(model="escape", version=1)
    assert _code(lambda: stand.stub(channel).StartConversion(request, timeout=10)) \
        is grpc.StatusCode.INVALID_ARGUMENT


def test_policy_is_validated_persisted_and_cleared(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    stub = stand.stub(channel)
    answer = stub.SetModelPolicy(pb.SetModelPolicyRequest(
        model="mlp", overrides=pb.PolicyOverrides(precision="fp16", max_engines=2)), timeout=10)
    assert answer.effective.precision == "FP16" and answer.effective.max_engines == 2
    assert answer.overrides.HasField("precision") and not answer.overrides.HasField("backend")
    answer = stub.SetModelPolicy(pb.SetModelPolicyRequest(
        model="mlp", overrides=pb.PolicyOverrides(default_batch_sizes=[8, 2])), timeout=10)
    assert list(answer.effective.default_batch_sizes) == [2, 8]
    assert answer.effective.precision == "FP16", "a second call merges"

    reopened = ModelControls.open(stand.root / "state").get("mlp")
    assert reopened.overrides.precision == "FP16" and reopened.overrides.max_engines == 2
    assert reopened.overrides.default_batch_sizes == (2, 8)
    assert stub.GetModel(pb.GetModelRequest(name="mlp"), timeout=10).policy.max_engines == 2

    answer = stub.SetModelPolicy(pb.SetModelPolicyRequest(model="mlp", overrides=pb.PolicyOverrides(
        rebuild_below_coverage=0.5, rebuild_after_seconds=30, rebuild_min_requests=20)), timeout=10)
    assert (answer.effective.rebuild_below_coverage, answer.effective.rebuild_after_seconds,
            answer.effective.rebuild_min_requests) == (0.5, 30.0, 20)
    def refused(bad: pb.PolicyOverrides) -> bool:
        request = pb.SetModelPolicyRequest(model="mlp", overrides=bad)
        code = _code(lambda: stub.SetModelPolicy(request, timeout=10))
        return code is grpc.StatusCode.INVALID_ARGUMENT

    assert refused(pb.PolicyOverrides(rebuild_below_coverage=1.5))  # a share is at most 1
    assert refused(pb.PolicyOverrides(accuracy="top5"))  # auto, top1 or scaled_error
    assert refused(pb.PolicyOverrides(max_scaled_error=-0.1))
    assert ModelControls.open(stand.root / "state").get("mlp").overrides.precision == "FP16"

    # INT8 with the default backends: int8 through oneDNN on a CPU, calibrated on traffic.
    int8 = stub.SetModelPolicy(pb.SetModelPolicyRequest(model="mlp", overrides=pb.PolicyOverrides(
        precision="INT8", backend="xla", accuracy="top1", min_top1_agreement=0.98)), timeout=10)
    assert (int8.effective.precision, int8.effective.backend) == ("INT8", "xla")
    assert (int8.effective.accuracy, int8.effective.min_top1_agreement) == ("top1", 0.98)
    assert not int8.effective.HasField("max_scaled_error")  # the precision's tolerance

    cleared = stub.SetModelPolicy(pb.SetModelPolicyRequest(model="mlp", clear=True), timeout=10)
    assert cleared.effective.precision == "FP32" and not cleared.overrides.HasField("precision")
    assert ModelControls.open(stand.root / "state").models() == []


def test_conversion_uses_persisted_policy_and_request_overrides(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    stub = stand.stub(channel)
    stand.land("mlp", 1)
    stub.SetModelPolicy(pb.SetModelPolicyRequest(
        model="mlp", overrides=pb.PolicyOverrides(keep_versions=3)), timeout=10)
    stand.runner.gate.clear()
    op = stub.StartConversion(pb.StartConversionRequest(
        model="mlp", version=1, overrides=pb.PolicyOverrides(max_engines=2)), timeout=10)
    [record] = stand.backend._operations.all()
    assert record.request.policy.keep_versions == 3 and record.request.policy.max_engines == 2
    assert op.metadata.overrides.max_engines == 2
    stand.runner.gate.set()
    _wait_done(stub, op.name)


def test_pause_and_resume_are_persisted_and_pausing_blocks_conversions(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    stub = stand.stub(channel)
    stand.land("mlp", 1)
    paused = stub.PauseModel(pb.PauseModelRequest(model="mlp", reason="bad data"), timeout=10)
    assert paused.paused and paused.reason == "bad data"
    assert ModelControls.open(stand.root / "state").is_paused("mlp")
    [summary] = stub.ListModels(pb.ListModelsRequest(), timeout=10).models
    assert summary.paused
    request = pb.StartConversionRequest(model="mlp", version=1)
    assert _code(lambda: stub.StartConversion(request, timeout=10)) \
        is grpc.StatusCode.FAILED_PRECONDITION
    resumed = stub.ResumeModel(pb.ResumeModelRequest(model="mlp"), timeout=10)
    assert not resumed.paused
    assert not ModelControls.open(stand.root / "state").is_paused("mlp")
    _wait_done(stub, stub.StartConversion(request, timeout=10).name)


def test_rollback_moves_the_newest_version_out_and_refuses_the_last_one(
    stand: AdminStand, channel: grpc.Channel, tmp_path: Path
) -> None:
    stub = stand.stub(channel)
    source = build_tiny_saved_model(tmp_path / "tiny")
    for version in (1, 2):
        stand.publisher.publish_copy("tiny", version, source)
    answer = stub.RollBack(pb.RollBackRequest(model="tiny"), timeout=10)
    assert (answer.rolled_back_version, answer.now_serving_version) == (2, 1)
    model_dir = stand.root / "serving" / "tiny"
    assert sorted(p.name for p in model_dir.iterdir()) == [".rolled-back-2", "1"]
    assert Path(answer.kept_at) == model_dir / ".rolled-back-2"
    assert stand.publisher.published_versions("tiny") == [1]
    with pytest.raises(grpc.RpcError) as caught:
        stub.RollBack(pb.RollBackRequest(model="tiny"), timeout=10)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "only servable version" in caught.value.details()
    assert (model_dir / "1").is_dir()


def test_shape_statistics_count_shapes_and_coverage(
    stand: AdminStand, channel: grpc.Channel
) -> None:
    def seen(batch: int) -> ShapeObservation:
        shape_set = ShapeSet.of({"x": TensorSpec("DT_FLOAT", (batch, 16))})
        return ShapeObservation("mlp", "serving_default", shape_set, time.time())

    huge = ShapeSet.of({"x": TensorSpec("DT_FLOAT", (1, 1 << 21))})
    stand.shapes.record([seen(8)] * 3 + [seen(2)]
                        + [ShapeObservation("mlp", "serving_default", huge, time.time())])
    stats = stand.stub(channel).GetShapeStatistics(
        pb.GetShapeStatisticsRequest(model="mlp"), timeout=10)
    [signature] = stats.signatures
    assert signature.signature == "serving_default" and signature.total_requests == 4
    top = [(list(e.shape_set.inputs[0].dims), e.count) for e in signature.top]
    assert top == [([8, 16], 3), ([2, 16], 1)]
    assert signature.top[0].share == pytest.approx(0.75)
    assert signature.coverage.total_requests == 4 and signature.coverage.covered_requests == 0
    assert dict(stats.refused_by_reason) == {"dimension": 1}
    limited = stand.stub(channel).GetShapeStatistics(
        pb.GetShapeStatisticsRequest(model="mlp", limit=1), timeout=10)
    assert len(limited.signatures[0].top) == 1
    coverage = stand.stub(channel).GetModel(pb.GetModelRequest(name="mlp"), timeout=10).coverage
    assert [(c.signature, c.total_requests) for c in coverage] == [("serving_default", 4)]
