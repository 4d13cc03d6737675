"""Human-readable text for the admin CLI: aligned tables of the API's answers."""

from __future__ import annotations

from collections.abc import Sequence

from tftrt.sidecar.admin.v1 import admin_pb2 as pb


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces; "(none)" without rows."""
    if not rows:
        return "(none)"
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def shape_set_text(shape_set: pb.ShapeSet) -> str:
    """``x:DT_FLOAT[8x16], y:...`` (``?`` for any size)."""
    return ", ".join(
        f"{t.name}:{t.dtype}[{'x'.join('?' if d < 0 else str(d) for d in t.dims)}]"
        for t in shape_set.inputs
    )


def models_text(response: pb.ListModelsResponse) -> str:
    """ListModels as a table, then the refused incoming directories with their reasons."""
    text = table(
        ["MODEL", "SERVING", "PAUSED", "VERSIONS BY STATE"],
        [
            [m.name, ",".join(str(v) for v in m.serving_versions) or "-",
             "yes" if m.paused else "no",
             " ".join(f"{s}={n}" for s, n in sorted(m.versions_by_state.items())) or "-"]
            for m in response.models
        ],
    )
    refused = "".join(f"\nrefused {r.path}: {r.reason}" for r in response.refused)
    return text + refused


def policy_text(policy: pb.EffectivePolicy, overrides: pb.PolicyOverrides) -> str:
    """One line per policy field; overridden ones marked with ``*``."""
    lines = []
    for field in pb.EffectivePolicy.DESCRIPTOR.fields:
        value = getattr(policy, field.name)
        if field.name == "default_batch_sizes":
            shown = ",".join(str(v) for v in value)
            overridden = bool(overrides.default_batch_sizes)
        else:
            shown = str(value).lower() if isinstance(value, bool) else str(value)
            overridden = overrides.HasField(field.name)
        lines.append(f"  {field.name} = {shown}{'  *' if overridden else ''}")
    return "\n".join(lines)


def accuracy_text(version: pb.ModelVersion) -> str:
    """A version's accuracy check in one cell: top-1 agreement where it was counted,
    else the largest scaled error; how many requests it ran on."""
    if not version.HasField("accuracy"):
        return "-"
    accuracy = version.accuracy
    figure = (f"top1 {accuracy.top1_agreement:.3f}" if accuracy.HasField("top1_agreement")
              else f"error {accuracy.scaled_error:.2g}")
    return f"{figure} on {accuracy.compared}"


def incoming_text(version: pb.ModelVersion) -> str:
    """Which build of its incoming version a served number is: the original served first,
    its converted form, or a rebuild."""
    if version.converted_as:
        return f"{version.incoming_version} original first"
    if version.takes_over_from:
        return f"{version.incoming_version} converted"
    return f"{version.incoming_version}" + (f" rebuild {version.rebuild}"
                                            if version.rebuild else "")


def model_text(model: pb.Model) -> str:
    """GetModel: the policy, the versions table and coverage."""
    versions = table(
        ["VERSION", "INCOMING", "STATE", "FLAVOUR", "PRECISION", "ACCURACY", "SERVING",
         "ENGINES", "BUILT FOR", "STAGES", "REASON"],
        [
            [v.version, incoming_text(v),
             v.state or "-", v.flavour or "-", v.precision or "-", accuracy_text(v),
             "yes" if v.in_serving else "no",
             f"{sum(1 for e in v.engines if e.kept)}/{len(v.engines)}",
             "; ".join(shape_set_text(s) for s in v.prebuilt_shapes) or "-",
             " ".join(f"{t.stage}={t.seconds:.1f}s" for t in v.stage_timings) or "-",
             v.reason or v.flavour_reason or "-"]
            for v in model.versions
        ],
    )
    coverage = table(
        ["SIGNATURE", "COVERED", "REQUESTS", "RATIO"],
        [[c.signature, c.covered_requests, c.total_requests, f"{c.ratio:.3f}"]
         for c in model.coverage],
    )
    return (f"model {model.name}{' (paused)' if model.paused else ''}\n"
            f"policy (* = overridden):\n{policy_text(model.policy, model.overrides)}\n\n"
            f"{versions}\n\ncoverage of recent traffic:\n{coverage}")


def operation_rows(operations: Sequence[pb.Operation]) -> str:
    """Operations as a table."""
    def result(op: pb.Operation) -> str:
        if op.HasField("error"):
            return f"error {op.error.code}: {op.error.message}"
        if op.HasField("response"):
            return f"{op.response.state} {op.response.flavour}".strip()
        return "-"

    return table(
        ["OPERATION", "MODEL", "VERSION", "PROGRESS", "STATE", "RESULT"],
        [[op.name, op.metadata.model, op.metadata.version, op.metadata.progress,
          op.metadata.state or "-", result(op)] for op in operations],
    )


def shapes_text(stats: pb.ShapeStatistics) -> str:
    """GetShapeStatistics: one table per signature, then refusals."""
    parts = []
    for sig in stats.signatures:
        parts.append(
            f"signature {sig.signature}: {sig.total_requests} request(s), coverage "
            f"{sig.coverage.ratio:.3f}\n"
            + table(["SHAPES", "COUNT", "SHARE", "PREBUILT"],
                    [[shape_set_text(e.shape_set), e.count, f"{e.share:.3f}",
                      "yes" if e.prebuilt else "no"] for e in sig.top])
        )
    if stats.refused_by_reason:
        parts.append("refused: " + ", ".join(
            f"{reason}={count}" for reason, count in sorted(stats.refused_by_reason.items())))
    return "\n\n".join(parts) or f"no recent traffic for {stats.model}"
