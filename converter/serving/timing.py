"""Time candidate SavedModels the way TF Serving runs them: each loaded through the
TF1 Session loader in another process (the warm child, see `warm_child`), their calls
interleaved so that changes in machine load touch all alike, their outputs checked
against the original's. Every Session is closed before the answer is sent."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from converter.errors import EngineExportError
from converter.serving import warm_child
from converter.serving.child_process import ChildFailed, read_tensor, write_tensors
from converter.serving.measuring import median_call_seconds, scaled_error
from converter.serving.session import ServingSession

# The choice is made once per model, on a machine that may be busy: time longer
# than an engine comparison does, and rule a candidate out only after many rounds.
_SECONDS_PER_CANDIDATE = 1.0
_DECISIVE_ROUNDS = 10


@dataclasses.dataclass(frozen=True)
class SessionTiming:
    """One candidate's measurement: per case, its median call time and its error."""

    failure: str | None
    """Why it could not load or run in a Session, or None."""
    seconds: list[float]
    errors: list[float]
    """Scaled error against the expected outputs (see `measuring.scaled_error`)."""


def time_in_sessions(
    models: Sequence[pathlib.Path],
    tags: Sequence[str],
    signature_key: str,
    inputs: Sequence[Mapping[str, np.ndarray]],
    expected: Sequence[Mapping[str, np.ndarray]] | None,
) -> list[SessionTiming]:
    """Measure every model in `models` on each input in the warm child.

    Outputs are compared with the first model's (the original, as TF Serving runs
    it); with `expected` where the first model cannot run in a Session."""
    with tempfile.TemporaryDirectory(prefix="tftrt-timing-") as scratch:
        request = pathlib.Path(scratch)
        cases = [{"inputs": write_tensors(request, f"in{i}", feed),
                  "outputs": write_tensors(request, f"out{i}", expected[i])
                  if expected is not None else None}
                 for i, feed in enumerate(inputs)]
        (request / "request.json").write_text(json.dumps({
            "models": [str(m) for m in models], "tags": list(tags), "key": signature_key,
            "cases": cases,
        }))
        try:
            answer = warm_child.ask("converter.serving.timing", request)
        except ChildFailed as failure:
            raise EngineExportError(
                f"timing the candidate models in a TF1 Session failed:\n{failure}") from None
    return [SessionTiming(**entry) for entry in answer]


def _failure(error: Exception) -> str:
    """The error's type and its telling lines (TF puts the cause last, after
    "Graph execution error:" and where it was detected)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    telling = [line for line in lines if not line.startswith(("Graph execution error",
                                                                "Detected at node"))]
    return f"{type(error).__name__}: {' '.join(telling[-2:] or lines[:1])[:400]}"


def answer(directory: pathlib.Path) -> list[dict[str, object]]:
    """The timings of the request in `directory` (written by `time_in_sessions`), in
    the warm child."""
    meta = json.loads((directory / "request.json").read_text())
    loaded: list[ServingSession | None] = []
    failures: list[str | None] = []
    for model in meta["models"]:
        served = None
        try:
            served = ServingSession.load(model, meta["tags"])
            served.signature_def(meta["key"])  # a candidate without it is ruled out too
            loaded.append(served)
            failures.append(None)
        except Exception as error:  # any load error disqualifies the candidate
            if served is not None:
                served.close()
            loaded.append(None)
            failures.append(_failure(error))
    try:
        return _measure(directory, meta, loaded, failures)
    finally:
        for served in loaded:
            if served is not None:
                served.close()


def _measure(directory: pathlib.Path, meta: dict[str, Any],
             loaded: Sequence[ServingSession | None],
             failures: list[str | None]) -> list[dict[str, object]]:
    """Check every loaded model on each case, then time them (`failures` gains the
    run errors)."""
    calls = [[entry.caller(meta["key"], {name: read_tensor(directory, file)
                                         for name, file in case["inputs"].items()})
              if entry else None for case in meta["cases"]] for entry in loaded]
    errors: list[list[float]] = [[] for _ in loaded]
    # Every check runs before any timing, each case on every candidate in turn, so
    # stateful models (a counter) have seen the same calls when they are compared.
    for position, case in enumerate(meta["cases"]):
        reference: list[np.ndarray] | None = None
        if case["outputs"] is not None:
            reference = [read_tensor(directory, case["outputs"][n])
                         for n in sorted(case["outputs"])]
        for index, row in enumerate(calls):
            call = row[position]
            if call is None or failures[index] is not None:
                continue
            try:
                produced = call()
            except Exception as error:  # a run error disqualifies the candidate
                failures[index] = _failure(error)
                continue
            if index == 0:  # the original as TF Serving runs it is the reference
                reference = produced
            errors[index].append(scaled_error(produced, reference)
                                 if reference is not None else float("inf"))
    seconds: list[list[float]] = [[] for _ in loaded]
    for position in range(len(meta["cases"])):
        owners, sides = [], []
        for index, row in enumerate(calls):
            call = row[position]
            if call is not None and failures[index] is None:
                owners.append(index)
                sides.append(call)
        medians = median_call_seconds(sides, (), _SECONDS_PER_CANDIDATE,
                                      _DECISIVE_ROUNDS) if sides else []
        for index, median in zip(owners, medians, strict=True):
            seconds[index].append(median)
    return [{"failure": failures[i], "seconds": seconds[i], "errors": errors[i]}
            for i in range(len(loaded))]
