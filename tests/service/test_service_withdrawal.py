"""Withdrawal keeps what it takes out of view, in-process on real directories: a version
removed from incoming is moved aside, comes back when the same content returns, and stays
aside when other content returns or retention would remove it at once."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.service.test_service import quick_settings, served
from tests.support.builders import corrupt_copy, land
from tests.support.disks import tree_listing
from tests.support.pipeline import pipeline_service


def test_a_withdrawn_version_comes_back_only_with_its_own_content(
    tmp_path: Path, mlp_model: Path
) -> None:
    corrupt = corrupt_copy(mlp_model, tmp_path / "corrupt_model")
    settings = quick_settings(tmp_path, keep_versions=2)
    incoming, model_dir = settings.paths.incoming_base, settings.paths.serving_base / "m"
    for version in (1, 2):
        land(mlp_model, incoming, "m", version)
    with pipeline_service(settings) as service:
        service.run()
        before = tree_listing(model_dir / "1000")
        shutil.rmtree(incoming / "m" / "1")
        service.step()
        assert served(settings, "m") == [2000]
        assert tree_listing(model_dir / ".withdrawn-1000") == before

        land(corrupt, incoming, "m", 1)  # other content under the same number
        service.run()
        assert served(settings, "m") == [2000]
        assert (model_dir / ".withdrawn-1000").is_dir()

        shutil.rmtree(incoming / "m" / "1")
        service.step()
        land(mlp_model, incoming, "m", 1)  # the content it was built from
        service.run()
        assert served(settings, "m") == [1000, 2000]
        assert tree_listing(model_dir / "1000") == before
        assert not (model_dir / ".withdrawn-1000").exists()

        shutil.rmtree(incoming / "m" / "1")
        service.step()
        land(mlp_model, incoming, "m", 3)
        service.run()
        assert served(settings, "m") == [2000, 3000]
        land(mlp_model, incoming, "m", 1)  # retention would remove it again at once
        service.run()
        assert served(settings, "m") == [2000, 3000]
        assert tree_listing(model_dir / ".withdrawn-1000") == before  # kept, not deleted
