"""Conversions between the backend's views and the admin API's protobuf messages."""

from __future__ import annotations

import dataclasses

from sidecar.admin.policy_wire import overrides_to_proto, policy_to_proto
from sidecar.admin.status import message_for, status_for
from sidecar.admin.views import (
    CoverageView,
    ModelSummaryView,
    ModelView,
    OperationView,
    PolicyView,
    RollBackView,
    ShapeStatisticsView,
    VersionView,
)
from sidecar.publish.published_accuracy import AccuracyRecord
from sidecar.publish.published_version import EngineInfo
from sidecar.shapes import ShapeSet
from sidecar.state.controls import ModelControl
from sidecar.tfserving import numbering
from sidecar.watch.listing import Refusal
from tftrt.sidecar.admin.v1 import admin_pb2 as pb


def shape_set_to_proto(shape_set: ShapeSet) -> pb.ShapeSet:
    """Input name -> dtype and dims."""
    return pb.ShapeSet(inputs=[
        pb.TensorShape(name=name, dtype=spec.dtype, dims=list(spec.shape))
        for name, spec in shape_set.specs
    ])


def coverage_to_proto(view: CoverageView) -> pb.SignatureCoverage:
    """One signature's coverage."""
    return pb.SignatureCoverage(
        signature=view.signature, covered_requests=view.covered_requests,
        total_requests=view.total_requests, ratio=view.ratio,
    )


def version_to_proto(view: VersionView) -> pb.ModelVersion:
    """One version."""
    return pb.ModelVersion(
        version=view.version,
        incoming_version=numbering.incoming_version(view.version),
        rebuild=numbering.generation(view.version),
        state=view.state,
        reason=view.reason,
        flavour=view.flavour,
        flavour_reason=view.flavour_reason,
        attempts=view.attempts,
        created_at=view.created_at,
        updated_at=view.updated_at,
        in_serving=view.in_serving,
        stage_timings=[pb.StageTiming(stage=s, seconds=t) for s, t in view.stage_timings],
        engines=[engine_to_proto(engine) for engine in view.engines],
        prebuilt_shapes=[shape_set_to_proto(shape_set) for _, shape_set in view.prebuilt],
        backend=view.backend,
        backend_reason=view.backend_reason,
        candidate=view.candidate,
        candidate_reason=view.candidate_reason,
        built_by=view.built_by,
        installed_from_store=view.installed_from_store,
        device=view.device,
        precision=view.accuracy.precision if view.accuracy else "",
        precision_reason=view.accuracy.precision_reason if view.accuracy else "",
        accuracy=accuracy_to_proto(view.accuracy) if view.accuracy else None,
        converted_as=view.converted_as,
        takes_over_from=view.takes_over_from,
    )


def accuracy_to_proto(record: AccuracyRecord) -> pb.Accuracy:
    """A version's accuracy check."""
    return pb.Accuracy(
        compared_on=record.compared_on, compared=record.compared,
        scaled_error=record.scaled_error, max_scaled_error=record.max_scaled_error,
        top1_agreement=record.top1_agreement, top1_rows=record.top1_rows,
        min_top1_agreement=record.min_top1_agreement)


def model_summary_to_proto(view: ModelSummaryView) -> pb.ModelSummary:
    """One line of ListModels."""
    return pb.ModelSummary(
        name=view.name, serving_versions=list(view.serving_versions),
        versions_by_state=dict(view.versions_by_state), paused=view.paused,
    )


def refusal_to_proto(refusal: Refusal) -> pb.RefusedDirectory:
    """One refused incoming directory of ListModels (a name that is not UTF-8 is shown with
    backslash escapes: protobuf strings must be UTF-8)."""
    return pb.RefusedDirectory(path=_utf8(str(refusal.path)), reason=_utf8(refusal.reason))


def _utf8(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def model_to_proto(view: ModelView) -> pb.Model:
    """GetModel's answer."""
    return pb.Model(
        name=view.name,
        paused=view.paused,
        policy=policy_to_proto(view.policy),
        overrides=overrides_to_proto(view.overrides),
        versions=[version_to_proto(v) for v in view.versions],
        coverage=[coverage_to_proto(c) for c in view.coverage],
    )


def engine_to_proto(engine: EngineInfo) -> pb.Engine:
    """One engine: the message's fields are the engine's, its shapes ``Shape`` messages."""
    fields = dataclasses.asdict(engine)
    fields["shapes"] = [pb.Shape(dims=list(shape)) for shape in engine.shapes]
    return pb.Engine(**fields)


def operation_to_proto(view: OperationView) -> pb.Operation:
    """An operation, with its error or response once done."""
    message = pb.Operation(
        name=view.name,
        done=view.done,
        metadata=pb.ConversionMetadata(
            model=view.model, version=view.version, rebuild=view.rebuild,
            progress=view.progress, state=view.state, created_at=view.created_at,
            updated_at=view.updated_at, overrides=overrides_to_proto(view.overrides),
        ),
    )
    if view.failure is not None:
        message.error.CopyFrom(pb.Status(code=status_for(view.failure).value[0],
                                         message=message_for(view.failure)))
    elif view.response is not None:
        message.response.CopyFrom(version_to_proto(view.response))
    return message


def shape_statistics_to_proto(view: ShapeStatisticsView) -> pb.ShapeStatistics:
    """GetShapeStatistics's answer."""
    return pb.ShapeStatistics(
        model=view.model,
        signatures=[
            pb.SignatureShapes(
                signature=sig.signature,
                total_requests=sig.total_requests,
                top=[
                    pb.ShapeSetCount(
                        shape_set=shape_set_to_proto(entry.shape_set), count=entry.count,
                        share=entry.share, prebuilt=entry.prebuilt,
                    )
                    for entry in sig.top
                ],
                coverage=coverage_to_proto(sig.coverage),
            )
            for sig in view.signatures
        ],
        refused_by_reason=dict(view.refused_by_reason),
    )


def policy_view_to_proto(view: PolicyView) -> pb.ModelPolicy:
    """SetModelPolicy's answer."""
    return pb.ModelPolicy(
        model=view.model, overrides=overrides_to_proto(view.overrides),
        effective=policy_to_proto(view.effective),
    )


def control_to_proto(control: ModelControl) -> pb.ModelControl:
    """PauseModel's and ResumeModel's answer."""
    return pb.ModelControl(model=control.model, paused=control.paused, reason=control.pause_reason)


def rollback_to_proto(view: RollBackView) -> pb.RollBackResponse:
    """RollBack's answer."""
    return pb.RollBackResponse(
        model=view.model, rolled_back_version=view.rolled_back_version,
        now_serving_version=view.now_serving_version, kept_at=view.kept_at,
    )
