"""TF Serving's own version layout through the real service loop (issue 24, item 1).

TF Serving reads a version directory's name with ``absl::SimpleAtoi``, and its own test
model ``saved_model_half_plus_two_tf2_cpu`` is laid out as ``00000123/``. A model tree
moved behind the sidecar as it is gets converted and published as served 123000 (incoming
N is served as N * 1000), read from the directory under the name it has.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sidecar.config import load_settings
from sidecar.jobs.fingerprint import content_fingerprint
from sidecar.publish import VersionPublisher
from sidecar.state import Flavour, JobState
from tests.support.builders import half_plus_two, land
from tests.support.disks import tree_listing
from tests.support.pipeline import pipeline_service
from tests.support.serving_poller import ServingPoller
from tests.support.session_run import session_outputs

TF_SERVING_NAME = "00000123"
"""The version directory of TF Serving's saved_model_half_plus_two_tf2_cpu."""


@pytest.fixture(scope="module")
def half_plus_two_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return half_plus_two(tmp_path_factory.mktemp("half_plus_two") / "model")


def test_tf_servings_zero_padded_layout_is_converted_and_published_as_served_123000(
    tmp_path: Path, mlp_model: Path, half_plus_two_model: Path
) -> None:
    settings = load_settings({
        "incoming": str(tmp_path / "incoming"), "serving": str(tmp_path / "serving"),
        "state": str(tmp_path / "state"), "engine_cache": str(tmp_path / "engine-cache"),
        "model_config_file": str(tmp_path / "serving" / "models.config"),
        "settle_seconds": 0, "rescan_interval_seconds": 0.05, "once": True,
    }, {"TFTRT_SIDECAR_SERVE_ORIGINAL_FIRST": "false"})  # one build, at the number it gets
    incoming, serving = settings.paths.incoming_base, settings.paths.serving_base
    sources = {model: land(source, incoming, model, TF_SERVING_NAME)
               for model, source in (("half_plus_two", half_plus_two_model), ("mlp", mlp_model))}
    landed = {model: tree_listing(path) for model, path in sources.items()}

    with ServingPoller(serving, poll_seconds=0.05) as poller, \
            pipeline_service(settings) as service:
        summary = service.run()
        jobs = {(job.model, job.version): job for job in service.journal.jobs()}
        assert poller.wait_for("mlp", 123000) and poller.wait_for("half_plus_two", 123000)
    assert poller.violations == []

    assert [(r.model, r.version, r.state) for r in summary.results] == [
        ("half_plus_two", 123000, JobState.PUBLISHED), ("mlp", 123000, JobState.PUBLISHED)]
    assert {r.model: r.flavour for r in summary.results}["mlp"] is Flavour.CONVERTED
    publisher = VersionPublisher(serving)
    assert publisher.models() == ["half_plus_two", "mlp"]
    assert all(publisher.published_versions(model) == [123000] for model in sources)
    config = settings.paths.model_config_file.read_text()
    assert 'name: "half_plus_two"' in config and 'name: "mlp"' in config
    # Read from the directory under its own name: what the job fingerprinted is 00000123.
    for model, path in sources.items():
        assert jobs[(model, 123000)].source_fingerprint == content_fingerprint(path)
        assert tree_listing(path) == landed[model], "incoming is never changed"
    assert sorted(p.name for p in (incoming / "mlp").iterdir()) == [TF_SERVING_NAME]

    [answer] = session_outputs(serving / "half_plus_two" / "123000",
                               [{"x": np.array([4.0], np.float32)}])
    np.testing.assert_allclose(answer["y"], [4.0])  # 0.5 * 4 + 2
    feed: dict[str, np.ndarray] = {"x": np.ones((2, 16), np.float32)}
    [expected] = session_outputs(mlp_model, [feed])
    [got] = session_outputs(serving / "mlp" / "123000", [feed])
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6)
