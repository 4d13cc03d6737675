"""The service loop in-process on real directories: withdrawal, retention, model config,
recovery at start, and versions that are already served.

Versions land under incoming numbers; the serving base and the journal use served
numbers (incoming N is served as ``served_version(N)`` = N * 1000).

Models here use ``backend = "tensorrt"``, which TF 2.21 lacks, so each job quickly
publishes the original (the converted path is covered by the job and e2e tests).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sidecar.config import Settings, load_settings
from sidecar.publish import VersionPublisher
from sidecar.state import Flavour, JobState
from sidecar.tfserving.numbering import served_version
from tests.support.builders import land
from tests.support.disks import tree_listing
from tests.support.pipeline import pipeline_service
from tests.support.serving_poller import ServingPoller


def quick_settings(root: Path, keep_versions: int = 2, *,
                   serve_original_first: bool = False) -> Settings:
    """Settings whose conversions fail at once (no TensorRT here), publishing the original;
    each version is built once, at its first served number, unless ``serve_original_first``
    (tests/service/test_original_first.py runs the default)."""
    return load_settings(
        {
            "incoming": str(root / "incoming"),
            "serving": str(root / "serving"),
            "state": str(root / "state"),
            "engine_cache": str(root / "engine-cache"),
            "model_config_file": str(root / "serving" / "models.config"),
            "settle_seconds": 0,
            "rescan_interval_seconds": 0.05,
            "once": True,
        },
        {"TFTRT_SIDECAR_BACKEND": "tensorrt",
         "TFTRT_SIDECAR_KEEP_VERSIONS": str(keep_versions),
         "TFTRT_SIDECAR_SERVE_ORIGINAL_FIRST": str(serve_original_first).lower()},
    )


def served(settings: Settings, model: str) -> list[int]:
    """The served version numbers of ``model`` in the serving base, ascending."""
    return VersionPublisher(settings.paths.serving_base).published_versions(model)


def test_withdrawal_retention_and_model_config_keep_a_version_available(
    tmp_path: Path, mlp_model: Path
) -> None:
    settings = quick_settings(tmp_path)
    incoming = settings.paths.incoming_base
    for version in (1, 2):
        land(mlp_model, incoming, "m", version)
    hand = served_version(7)
    VersionPublisher(settings.paths.serving_base).publish_copy("hand", hand, mlp_model)
    land(mlp_model, incoming, "hand", 7)  # its number is already served: skipped, untouched
    before = tree_listing(settings.paths.serving_base / "hand" / str(hand))

    poller = ServingPoller(settings.paths.serving_base, poll_seconds=0.05, require_warmup=False)
    with poller, pipeline_service(settings) as service:
        summary = service.run()
        assert [(r.model, r.version, r.state) for r in summary.results] == [
            ("hand", hand, JobState.SKIPPED),
            ("m", served_version(2), JobState.PUBLISHED),
            ("m", served_version(1), JobState.PUBLISHED),
        ]
        assert all(r.flavour is Flavour.ORIGINAL for r in summary.results[1:])
        skipped = summary.results[0].reason
        assert skipped is not None and "already published" in skipped
        assert tree_listing(settings.paths.serving_base / "hand" / str(hand)) == before
        config = settings.paths.model_config_file.read_text()
        assert 'name: "m"' in config and 'name: "hand"' in config

        land(mlp_model, incoming, "m", 3)
        summary = service.run()
        assert summary.retired == [("m", 1000)]  # keep_versions = 2
        assert served(settings, "m") == [2000, 3000]

        shutil.rmtree(incoming / "m" / "2")
        service.step()
        assert summary.withdrawn == [("m", 2000)]
        assert served(settings, "m") == [3000]

        shutil.rmtree(incoming / "m" / "3")
        service.step()  # the only servable version stays
        assert served(settings, "m") == [3000]
        assert 'name: "m"' in settings.paths.model_config_file.read_text()
    assert poller.violations == []


def test_a_version_leaving_incoming_takes_every_rebuild_of_it_out_of_serving(
    tmp_path: Path, mlp_model: Path
) -> None:
    settings = quick_settings(tmp_path, keep_versions=3)
    incoming = settings.paths.incoming_base
    for version in (1, 2):
        land(mlp_model, incoming, "m", version)
    with pipeline_service(settings) as service:
        service.run()
        rebuild = served_version(1, 1)
        service.journal.discover("m", rebuild, reason="rebuild asked for by the test")
        summary = service.run()
        assert [(r.version, r.state) for r in summary.results][-1] == (
            rebuild, JobState.PUBLISHED)
        assert served(settings, "m") == [1000, 1001, 2000]  # built from incoming/m/1

        shutil.rmtree(incoming / "m" / "1")
        service.step()
        assert summary.withdrawn == [("m", 1001), ("m", 1000)]  # newest first
        assert served(settings, "m") == [2000]


def test_start_recovers_what_a_stopped_process_left(tmp_path: Path, mlp_model: Path) -> None:
    settings = quick_settings(tmp_path)
    incoming = settings.paths.incoming_base
    for version in (3, 4):
        land(mlp_model, incoming, "m", version)
    with pipeline_service(settings) as service:
        service.run()
    assert served(settings, "m") == [3000, 4000]
    published = tree_listing(settings.paths.serving_base / "m" / "4000")

    # What a crash leaves: a staging directory, a job mid-way; meanwhile 3 left incoming.
    stale = settings.paths.serving_base / "m" / ".staging-5000-dead"
    stale.mkdir()
    (stale / "saved_model.pb").write_bytes(b"half")
    land(mlp_model, incoming, "m", 5)
    with pipeline_service(settings) as service:
        service.journal.discover("m", 5000)
        service.journal.advance("m", 5000, JobState.CONVERTING)
        shutil.rmtree(incoming / "m" / "3")
        summary = service.run()
        assert summary.start is not None
        assert summary.start.leftovers_removed == (stale,)
        assert [(j.model, j.version) for j in summary.start.recovery.restarted] == [("m", 5000)]
        assert summary.start.withdrawn == (("m", 3000),)
        assert [(r.version, r.state) for r in summary.results] == [(5000, JobState.PUBLISHED)]
        job = service.journal.get("m", 5000)
        assert job is not None and job.attempts == 2
    assert served(settings, "m") == [4000, 5000]
    # never republished
    assert tree_listing(settings.paths.serving_base / "m" / "4000") == published

    with pipeline_service(settings) as service:
        assert service.run().results == []  # nothing new: published versions stay as they are
