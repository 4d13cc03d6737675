"""Listing the serving base fails as a fault of the serving base's storage, never as a
bare OSError the service loop cannot place (it would only log it as a bug)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.base.errors import StorageError
from sidecar.base.faults import FaultArea
from sidecar.tfserving.layout import published_models, published_versions


def test_a_missing_model_or_base_lists_nothing(tmp_path: Path) -> None:
    assert published_versions(tmp_path / "absent") == []
    assert published_models(tmp_path / "absent") == []


@pytest.mark.parametrize("listing", [published_versions, published_models])
def test_an_unlistable_directory_is_a_serving_fault(tmp_path: Path, listing: object) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where a directory should be")
    with pytest.raises(StorageError) as raised:
        listing(blocked)  # type: ignore[operator]
    assert raised.value.area is FaultArea.SERVING
    assert str(blocked) in str(raised.value)
