"""The service serving the original first (the default), in-process on real directories
with the real converter: the original is in view and in the model config while its
conversion runs (seen through the job checkpoint seam), the converted form takes over,
retention keeps the original beside it, and rollback and withdrawal treat both served
numbers of one incoming version."""

from __future__ import annotations

import shutil
from pathlib import Path

from sidecar.config import Settings, load_settings
from sidecar.publish import VersionPublisher, roll_back_newest
from sidecar.service.wiring import Seams
from sidecar.state import Flavour, JobState
from tests.service.test_service import served
from tests.support.builders import land
from tests.support.pipeline import pipeline_service
from tests.support.serving_poller import ServingPoller


def converting_settings(root: Path) -> Settings:
    """The default policy (the original served first, keep_versions 2), converting for real."""
    return load_settings({
        "incoming": str(root / "incoming"), "serving": str(root / "serving"),
        "state": str(root / "state"), "engine_cache": str(root / "engine-cache"),
        "model_config_file": str(root / "serving" / "models.config"),
        "settle_seconds": 0, "rescan_interval_seconds": 0.05, "once": True,
    }, {})


def test_both_numbers_of_an_incoming_version_through_retention_rollback_and_withdrawal(
    tmp_path: Path, mlp_model: Path
) -> None:
    settings = converting_settings(tmp_path)
    incoming, model_dir = settings.paths.incoming_base, settings.paths.serving_base / "m"
    seen_while_building: list[tuple[list[int], bool]] = []

    def checkpoint(step: str) -> None:
        if step == "job-building":  # the converted form's job: the original is served
            config = settings.paths.model_config_file
            seen_while_building.append((VersionPublisher(settings.paths.serving_base)
                                        .published_versions("m"),
                                        config.is_file() and 'name: "m"' in config.read_text()))

    land(mlp_model, incoming, "m", 1)
    poller = ServingPoller(settings.paths.serving_base, poll_seconds=0.05)
    with poller, pipeline_service(settings, Seams(checkpoint=checkpoint)) as service:
        summary = service.run()
        assert [(r.version, r.state, r.flavour) for r in summary.results] == [
            (1000, JobState.PUBLISHED, Flavour.ORIGINAL),
            (1001, JobState.PUBLISHED, Flavour.CONVERTED),
        ]
        assert seen_while_building == [([1000], True)]
        assert served(settings, "m") == [1000, 1001]

        land(mlp_model, incoming, "m", 2)
        service.run()
        assert seen_while_building[-1] == ([1001, 2000], True)
        # 1000 left once 2000 came (2 kept); 2000 stays beside 1001 and 2001 as 2001's
        # rollback target, and 1001 stays as the previous model's.
        assert summary.retired == [("m", 1000)]
        assert served(settings, "m") == [1001, 2000, 2001]
        service.start()  # retention again, at start: the same answer
        assert served(settings, "m") == [1001, 2000, 2001]

        rolled = roll_back_newest(model_dir)  # the converted form is bad: its original serves
        assert (rolled.version, rolled.now_serving) == (2001, 2000)

        shutil.rmtree(incoming / "m" / "2")  # the model is bad too: withdraw what is left
        service.step()
        assert summary.withdrawn == [("m", 2000)]
        assert served(settings, "m") == [1001]
        assert (model_dir / ".rolled-back-2001").is_dir()
        assert (model_dir / ".withdrawn-2000").is_dir()
    assert poller.violations == []


def test_withdrawing_an_incoming_version_takes_both_numbers_and_skips_a_queued_conversion(
    tmp_path: Path, mlp_model: Path
) -> None:
    settings = converting_settings(tmp_path)
    for version in (1, 2):  # both land at once
        land(mlp_model, settings.paths.incoming_base, "m", version)
    incoming = settings.paths.incoming_base
    with pipeline_service(settings) as service:
        # Both landed at once: 2 is built first (newest first), then 1, whose original is
        # not "too old": 2000 is 2001's rollback target and does not count.
        summary = service.run()
        assert [r.version for r in summary.results] == [2000, 2001, 1000, 1001]
        assert served(settings, "m") == [1001, 2000, 2001]
        shutil.rmtree(incoming / "m" / "2")
        service.step()
        assert summary.withdrawn == [("m", 2001), ("m", 2000)]  # newest first
        assert served(settings, "m") == [1001]

        land(mlp_model, incoming, "m", 3)
        service.step()  # 3000, the original, is published; its conversion is queued
        assert served(settings, "m") == [1001, 3000]
        shutil.rmtree(incoming / "m" / "3")
        service.step()
        conversion = service.journal.get("m", 3001)
        assert conversion is not None and conversion.state is JobState.SKIPPED
        assert served(settings, "m") == [1001]
