"""The choice among measured candidates: never slower than the original."""

from __future__ import annotations

from converter.candidates import choose
from converter.serving.timing import SessionTiming

NAMES = ["original", "frozen", "frozen+xla"]
SHAPES = [[[1, 4]], [[8, 4]]]


def _choose(*timings: SessionTiming, forced: str | None = None) -> tuple[str, list[str]]:
    choice = choose(NAMES[:len(timings)], ["-"] * len(timings), ["FP32"] * len(timings),
                    list(timings), SHAPES, [3, 1], forced)
    return choice.chosen, [c.note for c in choice.candidates]


def _ok(*seconds: float) -> SessionTiming:
    return SessionTiming(None, list(seconds), [0.0] * len(seconds))


def test_a_rival_must_beat_the_original_on_every_shape_set() -> None:
    # Engines win big at batch 8 but only tie at batch 1: frozen, faster at both, wins.
    chosen, notes = _choose(_ok(0.427, 2.136), _ok(0.367, 1.908), _ok(0.423, 1.269))
    assert chosen == "frozen"
    assert notes[2] == "not 3% faster than the original on shape set(s) 1"


def test_the_fastest_in_total_wins_weighted_by_uses() -> None:
    # frozen+xla is slower at batch 8 but batch 1 carries three times the traffic.
    assert _choose(_ok(1.0, 4.0), _ok(0.9, 3.0), _ok(0.5, 3.5))[0] == "frozen+xla"


def test_ties_and_wrong_answers_leave_the_original() -> None:
    wrong = SessionTiming(None, [0.1, 0.1], [0.0, 0.5])
    chosen, notes = _choose(_ok(1.0, 1.0), _ok(0.99, 0.99), wrong)
    assert chosen == "original"
    assert notes[2].startswith("outputs differ: scaled error 0.5")


def test_an_original_that_fails_in_a_session_loses_to_one_that_runs() -> None:
    broken = SessionTiming("FailedPreconditionError: Could not find variable", [], [])
    chosen, notes = _choose(broken, _ok(2.0, 2.0))
    assert chosen == "frozen" and notes[0].startswith("fails in a TF1 Session")


def test_keep_slower_engines_forces_the_engines_when_they_match() -> None:
    assert _choose(_ok(1.0, 1.0), _ok(0.5, 0.5), _ok(3.0, 3.0),
                   forced="frozen+xla")[0] == "frozen+xla"


def test_each_candidate_is_held_to_its_own_precisions_tolerance() -> None:
    # 1e-2 off the original: within BF16's tolerance, far outside FP32's.
    off = SessionTiming(None, [0.5, 0.5], [1e-2, 1e-2])
    choice = choose(["original", "frozen", "frozen+bf16"], ["-"] * 3, ["FP32", "FP32", "BF16"],
                    [_ok(1.0, 1.0), off, off], SHAPES, [3, 1])
    assert choice.chosen == "frozen+bf16"
    assert choice.candidates[1].note.startswith("outputs differ: scaled error 0.01 exceeds 0.0001")
    assert [(c.precision, c.worst_error) for c in choice.candidates] == [
        ("FP32", 0.0), ("FP32", 1e-2), ("BF16", 1e-2)]
