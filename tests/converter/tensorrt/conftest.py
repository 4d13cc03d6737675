"""Tests that run TF-TRT itself: TensorFlow <= 2.17 built with TensorRT, and a GPU.

They are deselected unless the marker expression names `tensorrt` (run them with
`pytest -m tensorrt` on such a machine), so where they cannot work they are
neither passed nor skipped. Selected where TF-TRT cannot run, they fail and say why.
"""

from __future__ import annotations

import pytest

from converter.backend import tensorrt_unavailable_reason


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "tensorrt" in (config.getoption("markexpr") or ""):
        return  # `-m tensorrt` selects them, `-m "not tensorrt"` drops them: pytest decides
    dropped = [item for item in items if item.get_closest_marker("tensorrt")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("tensorrt")]


@pytest.fixture(autouse=True, scope="session")
def tftrt_can_run() -> None:
    problem = tensorrt_unavailable_reason()
    if problem is not None:
        pytest.fail(f"the tensorrt tests need TF-TRT, which cannot run here: {problem}",
                    pytrace=False)
