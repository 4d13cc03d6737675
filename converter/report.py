"""What a conversion did, as data (saved with the model) and as text: all of it
(`render()`), or one screen (`summary()`)."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import types
import typing
from collections.abc import Sequence
from typing import Any

from converter.backend import BackendChoice
from converter.candidates import ORIGINAL, Choice
from converter.device import (
    BuildDevice,
    PrecisionChoice,
    choose_precision,
    engine_namespace,
)
from converter.errors import SavedModelError
from converter.graph.freeze import FREEZE_LIMIT_BYTES
from converter.params import ConversionParams

REPORT_FILE = pathlib.Path("assets.extra", "tftrt", "conversion.json")
"""Where a converted SavedModel holds its report."""

SUMMARY_SEGMENTS = 4
"""`summary()` shows the largest segments, at most this many; `render()` shows all."""

SUMMARY_ENGINES = 3
"""`summary()` shows at most this many engines per segment; `render()` shows all."""

SUMMARY_REASONS = 5
"""`summary()` shows the reasons that leave the most ops native, at most this many (each
op type without an XLA kernel is a reason of its own); `render()` shows all."""


def shape_text(shape: Sequence[int | None] | None) -> str:
    """A shape as the report prints it: "8x?x3", "scalar", or "?" for an unknown rank."""
    if shape is None:
        return "?"
    return "x".join("?" if d is None else str(d) for d in shape) or "scalar"


@dataclasses.dataclass(frozen=True)
class FreezeReport:
    """What freezing did: which variables became constants, which stayed and why."""

    frozen_variables: int
    frozen_bytes: int
    kept_variables: dict[str, str]
    """Signature/capture -> why that variable stays a variable."""
    unfrozen_signatures: dict[str, str]
    """Signature -> why its graph was kept as it was."""
    limit_bytes: int = FREEZE_LIMIT_BYTES


@dataclasses.dataclass(frozen=True)
class EngineReport:
    """One measured engine."""

    shapes: list[list[int]]
    precision: str
    uses: int
    compile_seconds: float
    engine_ms: float
    native_ms: float
    speedup: float
    error: float
    kept: bool
    reason: str
    key: str


@dataclasses.dataclass(frozen=True)
class SegmentReport:
    """One segment: what it holds, its boundary, its engines and its dispatch."""

    name: str
    ops: dict[str, int]
    inputs: list[str]
    outputs: list[str]
    shape_inputs: list[int]
    precision: str
    note: str
    prebuilt: list[list[list[int]]]
    fallback: str
    inline: bool
    """True when no shape runs an engine: the segment's ops stay in the graph as they were."""
    engines: list[EngineReport]


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    """The whole conversion, serialisable as JSON."""

    model: str
    signature: str
    backend: str
    backend_reason: str
    device: str
    engine_namespace: str
    params: dict[str, Any]
    total_ops: int
    ops_in_segments: int
    segments: list[SegmentReport]
    native: dict[str, dict[str, int]]
    """Reason -> op type -> count, for every op left native."""
    built: bool
    built_inputs: list[list[list[int]]] = dataclasses.field(default_factory=list)
    """The signature input shapes of each input set build() ran (tensorrt backend:
    TF-TRT built its engines for these; the xla backend lists engines instead)."""
    freezing: FreezeReport | None = None
    """Which variables became constants and which stayed variables, and why."""
    choice: Choice | None = None
    """The candidates timed in the Session path and the one saved (None: build()
    was not called, nothing was measured)."""
    precision: str = ""
    """What `params.precision_mode` computes in on this device (FP16 is BF16 on a CPU
    with native bfloat16); empty in reports written before it was recorded."""
    precision_reason: str = ""
    """Why: the device's bfloat16 support, or why a bfloat16 rewrite could not be made."""

    @property
    def nothing_to_compile(self) -> bool:
        """True when no segment was found."""
        return not self.segments

    @property
    def chosen(self) -> str | None:
        """The candidate saved ("original", "frozen", "frozen+xla", "xla"), or None
        when build() measured nothing."""
        return self.choice.chosen if self.choice else None

    @property
    def unchanged(self) -> bool:
        """True when the saved model is the input, unchanged: the original won the
        measurement, or there was nothing to freeze and nothing to compile."""
        if self.choice is not None:
            return self.choice.chosen == ORIGINAL
        frozen = self.freezing.frozen_variables if self.freezing else 0
        return self.nothing_to_compile and not frozen

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ConversionReport:
        """The report :meth:`to_json` wrote. Raises ValueError naming the field that is
        missing or of the wrong type."""
        report = _from_plain(cls, json.loads(text), "report")
        assert isinstance(report, ConversionReport)
        return report

    @classmethod
    def read(cls, saved_model_dir: pathlib.Path) -> ConversionReport | None:
        """The report saved with a converted SavedModel; None when it has none (a model the
        converter did not write). Raises SavedModelError when the file cannot be read or
        is not a report."""
        path = pathlib.Path(saved_model_dir) / REPORT_FILE
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SavedModelError(
                f"{path} is not a readable conversion report: {exc}. Convert the model "
                "again to rewrite it, or remove the file."
            ) from exc

    def render(self, line_length: int = 100, detailed: bool = True) -> str:
        """The whole report as text, TF-TRT's summary() layout extended with engines:
        every segment with (when `detailed`) each of its inputs and outputs, every
        engine, every variable kept and why, every candidate. `summary` is its one
        screen."""
        rule = "=" * line_length
        lines = [rule, *self._header_lines()]
        lines.extend(self._freezing_lines())
        if self.nothing_to_compile:
            lines.append("Nothing to compile with XLA.")
        for segment in self.segments:
            lines.append("-" * line_length)
            lines.append(f"{segment.name}: {sum(segment.ops.values())} ops "
                         f"[{_ops_text(segment.ops)}]")
            lines.append(f"  inputs {len(segment.inputs)}, outputs {len(segment.outputs)}; "
                         f"precision {segment.precision}"
                         + (f" ({segment.note})" if segment.note else ""))
            if detailed:
                lines.extend(f"    in:  {name}" for name in segment.inputs)
                lines.extend(f"    out: {name}" for name in segment.outputs)
            lines.append(f"  {self._dispatch_text(segment)}")
            lines.extend(f"  {_engine_text(engine)}" for engine in segment.engines)
        if not self.built and self.segments:
            lines.append("No engines prebuilt: call build(input_fn) to compile and measure them.")
        lines.append("-" * line_length)
        lines.append("Ops left native, by reason:")
        lines.extend(self._native_lines(detailed=True, most=None))
        lines.extend(self._choice_lines(line_length, described=True))
        lines.append(rule)
        return "\n".join(lines)

    def summary(self, line_length: int = 100, detailed: bool = True) -> str:
        """The report on one screen: the choice and every candidate's timings, the
        largest segments with their op counts (their op types when `detailed`), their
        engines, and the ops left native. The rest (each segment's inputs and outputs,
        each kept variable) is in `render()` and the saved `conversion.json`."""
        rule = "=" * line_length
        lines = [rule, *self._header_lines()]
        if self.freezing is not None:
            lines.append(self._frozen_text(self.freezing))
        lines.extend(self._choice_lines(line_length, described=False))
        lines.append("-" * line_length)
        if self.nothing_to_compile:
            lines.append("Nothing to compile with XLA.")
        largest = sorted(self.segments, key=lambda s: -sum(s.ops.values()))
        for segment in largest[:SUMMARY_SEGMENTS]:
            lines.append(f"{segment.name}: {sum(segment.ops.values())} ops, "
                         f"{len(segment.inputs)} input(s), {len(segment.outputs)} output(s), "
                         f"{segment.precision}: {self._dispatch_text(segment)}")
            if detailed:
                lines.append(f"  ops: {_ops_text(segment.ops)}")
            lines.extend(f"  {_engine_text(engine)}"
                         for engine in segment.engines[:SUMMARY_ENGINES])
            if len(segment.engines) > SUMMARY_ENGINES:
                lines.append(f"  ... and {len(segment.engines) - SUMMARY_ENGINES} more "
                             "engine(s)")
        rest = largest[SUMMARY_SEGMENTS:]
        if rest:
            lines.append(f"... and {len(rest)} smaller segment(s) holding "
                         f"{sum(sum(s.ops.values()) for s in rest)} ops")
        if not self.built and self.segments:
            lines.append("No engines prebuilt: call build(input_fn) to compile and measure them.")
        native = sum(sum(ops.values()) for ops in self.native.values())
        lines.append(f"Ops left native: {native}, by reason:")
        lines.extend(self._native_lines(detailed=detailed, most=SUMMARY_REASONS))
        lines.append("Every segment's inputs and outputs, every kept variable: "
                     f"report().render(), or {REPORT_FILE.as_posix()} in the saved model.")
        lines.append(rule)
        return "\n".join(lines)

    def _header_lines(self) -> list[str]:
        return [
            f"Converted {self.model} signature {self.signature!r}",
            f"backend {self.backend} ({self.backend_reason}); device {self.device}; "
            f"precision {self.params['precision_mode']}" + (
                f" -> {self.precision} ({self.precision_reason})"
                if self.precision_reason not in ("", "requested") else ""),
            f"engine cache namespace: {self.engine_namespace}",
            f"{len(self.segments)} segment(s) hold {self.ops_in_segments} of "
            f"{self.total_ops} ops",
        ]

    def _dispatch_text(self, segment: SegmentReport) -> str:
        """Which shapes run an engine, and what runs the others."""
        if segment.inline:
            return "no engine runs: the segment stays inline as native TensorFlow"
        if self.backend == "tensorrt":
            return (f"engines built by TF-TRT for: {self._built_text()}; other shapes run "
                    f"{segment.fallback}")
        prebuilt = "; ".join(
            ", ".join(shape_text(s) for s in shape_set) for shape_set in segment.prebuilt)
        return f"prebuilt shapes: {prebuilt or 'none'}; other shapes run {segment.fallback}"

    def _native_lines(self, detailed: bool, most: int | None) -> list[str]:
        """A line per reason ops stay native (with their types when `detailed`), the
        `most` that hold the most ops (None: all)."""
        reasons = sorted(self.native.items(), key=lambda kv: -sum(kv[1].values()))
        lines = []
        for reason, ops in reasons[:most]:
            listed = f" [{_ops_text(ops)}]" if detailed else ""
            lines.append(f"  {sum(ops.values())}: {reason}{listed}")
        rest = reasons[len(lines):]
        if rest:
            lines.append(f"  {sum(sum(ops.values()) for _, ops in rest)}: "
                         f"{len(rest)} other reason(s)")
        return lines

    @staticmethod
    def _frozen_text(freezing: FreezeReport) -> str:
        text = (f"frozen: {freezing.frozen_variables} read-only variable(s), "
                f"{freezing.frozen_bytes / 2**20:.1f} MiB, now constants (limit "
                f"{freezing.limit_bytes / 2**20:.0f} MiB)")
        if freezing.kept_variables:
            text += f"; {len(freezing.kept_variables)} kept as variables"
        if freezing.unfrozen_signatures:
            text += f"; {len(freezing.unfrozen_signatures)} signature(s) kept their graph"
        return text

    def _freezing_lines(self) -> list[str]:
        if self.freezing is None:
            return []
        freezing = self.freezing
        lines = [self._frozen_text(freezing)]
        lines.extend(f"  kept as a variable: {name}: {why}"
                     for name, why in sorted(freezing.kept_variables.items()))
        lines.extend(f"  signature {key!r} kept its graph: {why}"
                     for key, why in sorted(freezing.unfrozen_signatures.items()))
        return lines

    def _choice_lines(self, line_length: int, described: bool) -> list[str]:
        """The candidates, one row each (with their descriptions when `described`), and
        the choice."""
        lines = ["-" * line_length]
        if self.choice is None:
            return [*lines, "Candidates not measured (no build()): saved frozen, with engines "
                    "where they may build at run time."]
        choice = self.choice
        sets = ["(" + ", ".join(shape_text(s) for s in shape_set) + f") x{uses}"
                for shape_set, uses in zip(choice.shapes, choice.uses, strict=True)]
        lines.append("Candidates, timed in a TF1 Session (TF Serving's path) on: "
                     + "; ".join(sets))
        for candidate in choice.candidates:
            times = ", ".join(f"{ms:.3f}" for ms in candidate.latency_ms) or "-"
            mark = "*" if candidate.name == choice.chosen else " "
            described_as = f" ({candidate.description})" if described else ""
            error = (f", error {candidate.worst_error:.2g}"
                     if candidate.worst_error is not None else "")
            lines.append(f" {mark}{candidate.name:11} {candidate.precision} {times} ms{error}"
                         f" - {candidate.note}{described_as}")
        lines.append(f"Chosen: {choice.chosen}: {choice.reason}")
        return lines

    def _built_text(self) -> str:
        sets = ["(" + ", ".join(shape_text(s) for s in shape_set) + ")"
                for shape_set in self.built_inputs]
        return "; ".join(sets) or "none yet"


def _ops_text(ops: dict[str, int]) -> str:
    return ", ".join(f"{op} x{n}" for op, n in sorted(ops.items()))


def _engine_text(engine: EngineReport) -> str:
    shapes = ", ".join(shape_text(s) for s in engine.shapes)
    return (f"engine [{shapes}] {engine.precision}: {engine.engine_ms:.3f} ms vs native "
            f"{engine.native_ms:.3f} ms ({engine.speedup:.2f}x), compile "
            f"{engine.compile_seconds:.2f} s, used by {engine.uses} input(s) - {engine.reason}")


def _from_plain(kind: Any, value: Any, where: str) -> Any:
    """``value`` (parsed JSON) as ``kind``: dataclasses, lists, dicts, optionals and scalars,
    as ``dataclasses.asdict`` wrote them."""
    origin = typing.get_origin(kind)
    if kind is Any:
        return value
    if origin is types.UnionType:
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        return _from_plain(next(o for o in options if o is not type(None)), value, where)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ValueError(f"{where} is {type(value).__name__}, not an object")
        hints = typing.get_type_hints(kind)
        fields = {}
        for field in dataclasses.fields(kind):
            if field.name in value:
                fields[field.name] = _from_plain(hints[field.name], value[field.name],
                                                 f"{where}.{field.name}")
            elif (field.default is dataclasses.MISSING
                  and field.default_factory is dataclasses.MISSING):
                raise ValueError(f"{where}.{field.name} is missing")
        return kind(**fields)
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{where} is {type(value).__name__}, not a list")
        (item,) = typing.get_args(kind)
        return [_from_plain(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where} is {type(value).__name__}, not an object")
        _, item = typing.get_args(kind)
        return {k: _from_plain(item, v, f"{where}.{k}") for k, v in value.items()}
    # JSON writes 1.0 as 1.0 but a float field may hold an int a report computed.
    accepted = (int, float) if kind is float else (kind,)
    if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
        raise ValueError(f"{where} is {value!r}, not {kind.__name__}")
    return value


def report_header(directory: pathlib.Path, key: str, params: ConversionParams,
                  backend: BackendChoice, device: BuildDevice,
                  precision: PrecisionChoice | None = None) -> dict[str, Any]:
    """The report fields every backend fills alike: model, signature, backend, device,
    params, and the precision (default: what the device makes of params')."""
    chosen = precision or choose_precision(params.precision_mode, device)
    return {
        "model": str(directory),
        "signature": key,
        "backend": backend.name,
        "backend_reason": backend.reason,
        "device": device.slug,
        "engine_namespace": engine_namespace(device),
        "params": dataclasses.asdict(params),
        "precision": chosen.precision,
        "precision_reason": chosen.reason,
    }
