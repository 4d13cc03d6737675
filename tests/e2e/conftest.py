"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sidecars a test starts build each version once, at its first served number
    (``serve_original_first`` off): what the tests written for that exercise; the original
    served first has tests of its own (test_original_first.py, test_sidecar_crash.py)."""
    monkeypatch.setenv("TFTRT_SIDECAR_SERVE_ORIGINAL_FIRST", "false")
