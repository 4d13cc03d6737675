"""The warm child: one TensorFlow process answers the converter's timing requests in
turn, replaced when it failed, died, went idle or no longer has the caller's settings."""

from __future__ import annotations

import os
import pathlib

import pytest

from converter.serving import warm_child
from converter.serving.child_process import ChildFailed
from tests.support.waiting import wait_until

_REQUESTS = "tests.support.warm_requests"


def _ask(tmp_path: pathlib.Path, what: str, **settings: str) -> dict[str, object]:
    request = tmp_path / what
    request.mkdir(exist_ok=True)
    (request / "do").write_text(what)
    answer = warm_child.ask(_REQUESTS, request, settings)
    assert isinstance(answer, dict)
    return answer


def _alive(pid: object) -> bool:
    """Whether the process has not ended yet. A killed multi-threaded process (TensorFlow
    runs many threads) shows its main thread as a zombie while the others still exit;
    only once they have can its parent see it end."""
    assert isinstance(pid, int)
    process = pathlib.Path(f"/proc/{pid}")
    try:
        status, threads = (process / "status").read_text(), os.listdir(process / "task")
    except FileNotFoundError:  # reaped already
        return False
    return "zombie" not in status or len(threads) > 1


def test_one_child_answers_request_after_request(tmp_path: pathlib.Path) -> None:
    first = _ask(tmp_path, "pid")
    assert first["pid"] != os.getpid()
    assert _ask(tmp_path, "pid")["pid"] == first["pid"]


def test_a_failed_request_says_why_and_the_next_gets_a_new_child(
        tmp_path: pathlib.Path) -> None:
    before = _ask(tmp_path, "pid")["pid"]
    with pytest.raises(ChildFailed, match="this request was asked to fail"):
        _ask(tmp_path, "fail")
    assert not _alive(before)
    assert _ask(tmp_path, "pid")["pid"] != before


def test_a_child_that_dies_mid_request_is_reported_with_its_stderr(
        tmp_path: pathlib.Path) -> None:
    with pytest.raises(ChildFailed, match="dying as asked"):
        _ask(tmp_path, "die")
    assert isinstance(_ask(tmp_path, "pid")["pid"], int)


def test_a_child_killed_while_idle_is_replaced(tmp_path: pathlib.Path) -> None:
    before = _ask(tmp_path, "pid")["pid"]
    assert isinstance(before, int)
    os.kill(before, 9)
    wait_until(lambda: not _alive(before), 30, "the killed child to end")
    assert _ask(tmp_path, "pid")["pid"] != before


def test_other_tensorflow_settings_get_a_child_started_with_them(
        tmp_path: pathlib.Path) -> None:
    plain = _ask(tmp_path, "pid")
    flagged = _ask(tmp_path, "pid", TF_XLA_FLAGS="--tf_xla_auto_jit=-1")
    assert flagged["pid"] != plain["pid"]
    assert "--tf_xla_auto_jit=-1" in str(flagged["flags"])
    assert not _alive(plain["pid"])


def test_an_idle_child_is_closed(tmp_path: pathlib.Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warm_child, "IDLE_SECONDS", 0.5)
    pid = _ask(tmp_path, "pid")["pid"]
    wait_until(lambda: not _alive(pid), 30, "the idle child to be closed")
