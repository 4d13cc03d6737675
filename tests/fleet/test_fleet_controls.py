"""Controls changed through two replicas at once: the store's conditional writes make the
later change again on the earlier one's record, so neither is lost, and a change that
keeps losing the race fails (ABORTED) with nothing changed. The stores are real
directories; the one stand-in is :class:`OtherReplicaFirst`, which only chooses when the
other replica's real change happens."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest

from sidecar.admin.status import status_for
from sidecar.base.errors import ConcurrentChangeError
from sidecar.config import ModelPolicy
from sidecar.config.overrides import PolicyOverrides
from sidecar.fleet.operator_records import KEPT_GENERATIONS, OperatorRecords
from sidecar.state.fleet_controls import CHANGE_ATTEMPTS, FleetControls

MODEL = "mlp"


class OtherReplicaFirst(OperatorRecords):
    """Replica A's real records, except that before each of its next ``times`` conditional
    writes, ``other`` (replica B's change) runs: B changes the model between A's read and
    A's write, as when both admin calls arrive at once."""

    def __init__(self, root: Path, other: Callable[[], object], times: int) -> None:
        super().__init__(root, "a")
        self._other = other
        self._times = times

    def set_control(self, model: str, record: Mapping[str, Any], *, replacing: int) -> bool:
        if self._times > 0:
            self._times -= 1
            self._other()
        return super().set_control(model, record, replacing=replacing)


def generations(store: Path) -> dict[int, dict[str, Any]]:
    """The model's control generations in the store, by number."""
    return {int(path.stem): json.loads(path.read_text())
            for path in (store / "controls" / MODEL).glob("*.json")}


def test_a_pause_and_a_policy_set_at_once_through_two_replicas_both_hold(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.state.fleet_controls")
    b = FleetControls(OperatorRecords(tmp_path, "b"))
    a = FleetControls(OtherReplicaFirst(tmp_path, lambda: b.pause(MODEL, "bad data"), 1))

    answer = a.set_overrides(MODEL, PolicyOverrides.parse({"max_engines": 2}, "test"))

    assert answer.paused and answer.pause_reason == "bad data", "A's answer is what holds"
    assert answer.overrides.max_engines == 2
    fresh = FleetControls(OperatorRecords(tmp_path, "c"))
    assert fresh.is_paused(MODEL)
    assert fresh.policy_for(MODEL, ModelPolicy()).max_engines == 2
    assert [(g, record["set_by"]) for g, record in sorted(generations(tmp_path).items())] == [
        (1, "b"), (2, "a")]
    assert "it is made again on theirs" in caplog.text


def test_a_change_that_keeps_losing_the_race_fails_and_changes_nothing(tmp_path: Path) -> None:
    b = FleetControls(OperatorRecords(tmp_path, "b"))
    pauses = iter(range(CHANGE_ATTEMPTS))
    a = FleetControls(OtherReplicaFirst(
        tmp_path, lambda: b.pause(MODEL, f"b's change {next(pauses)}"), CHANGE_ATTEMPTS))

    with pytest.raises(ConcurrentChangeError) as caught:
        a.resume(MODEL)

    assert "nothing was changed" in str(caught.value) and "make the change again" in str(
        caught.value)
    assert status_for(caught.value) is grpc.StatusCode.ABORTED
    assert caught.value.retryable
    newest = generations(tmp_path)[max(generations(tmp_path))]
    assert newest["set_by"] == "b" and newest["paused"] is True  # a's resume is nowhere
    assert a.is_paused(MODEL), "A reads B's record: it kept no copy of its failed change"


def test_conditional_writes_refuse_a_stale_generation_and_keep_the_newest_few(
    tmp_path: Path
) -> None:
    a, b = OperatorRecords(tmp_path, "a"), OperatorRecords(tmp_path, "b")
    assert a.control(MODEL) is None and a.controlled_models() == []
    assert a.set_control(MODEL, {"n": 1}, replacing=0)
    assert not b.set_control(MODEL, {"n": "b"}, replacing=0), "B read before A's change"
    found = b.control(MODEL)
    assert found is not None and found.generation == 1 and found.record["n"] == 1

    for n in range(2, 8):
        assert b.set_control(MODEL, {"n": n}, replacing=n - 1)
    assert sorted(generations(tmp_path)) == list(range(8 - KEPT_GENERATIONS, 8))
    # A change based on a generation so old it was pruned is refused, and leaves nothing.
    assert not a.set_control(MODEL, {"n": "stale"}, replacing=1)
    assert sorted(generations(tmp_path)) == list(range(8 - KEPT_GENERATIONS, 8))
    newest = a.control(MODEL)
    assert newest is not None and (newest.generation, newest.record["n"]) == (7, 7)
    assert a.controlled_models() == [MODEL]

    (tmp_path / "controls" / MODEL / "8.json").write_text("not json")  # not this sidecar's
    unreadable = a.control(MODEL)
    assert unreadable is not None and (unreadable.generation, unreadable.record) == (8, {})
