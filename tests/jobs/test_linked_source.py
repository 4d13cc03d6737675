"""A change behind a symbolic link inside a version is a change (issue 24, item 3f), on real
directories, real links and a real job.

The layout is the one Kubernetes volumes and shared exports use: the version's
``variables/`` links to ``.shared/current/variables`` inside the incoming base, and
``current`` is itself a link swapped atomically to new weights. The version's own link
never changes its text, so only following it shows that the weights did.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sidecar.jobs.errors import SourceChangedError
from sidecar.jobs.fingerprint import content_fingerprint
from sidecar.jobs.source import JobSource
from sidecar.state import Flavour, JobState
from sidecar.tfserving.numbering import served_version
from sidecar.watch import IncomingWatcher, WatchEventKind
from sidecar.watch.listing import fingerprint
from tests.jobs.conftest import Pipeline
from tests.support.clock import ManualClock
from tests.support.session_run import session_outputs

FEED: dict[str, np.ndarray] = {"x": np.ones((2, 16), np.float32)}


@pytest.fixture(scope="module")
def retrained(tmp_path_factory: pytest.TempPathFactory, mlp_model: Path) -> Path:
    """The MLP with other weights: its checkpoint rewritten under the same keys, every
    float scaled by 1.5 (so its variables/ load into the MLP's graph)."""
    import tensorflow as tf

    directory = tmp_path_factory.mktemp("retrained") / "model"
    shutil.copytree(mlp_model, directory)
    reader = tf.train.load_checkpoint(str(mlp_model / "variables" / "variables"))
    names = sorted(reader.get_variable_to_dtype_map())
    tensors = [reader.get_tensor(name) for name in names]
    tensors = [t * 1.5 if isinstance(t, np.ndarray) and t.dtype == np.float32 else t
               for t in tensors]
    shutil.rmtree(directory / "variables")
    (directory / "variables").mkdir()
    tf.raw_ops.SaveV2(prefix=str(directory / "variables" / "variables"), tensor_names=names,
                      shape_and_slices=[""] * len(names), tensors=tensors)
    return directory


def linked_version(incoming: Path, model: Path, retrained: Path) -> Path:
    """incoming/m/1: ``model`` with variables/ -> ../../.shared/current/variables, and
    current -> w1 (``model``'s weights); w2 holds ``retrained``'s weights."""
    shared = incoming / ".shared"
    shutil.copytree(model / "variables", shared / "w1" / "variables")
    shutil.copytree(retrained / "variables", shared / "w2" / "variables")
    (shared / "current").symlink_to("w1")
    landing = incoming / "m" / ".landing"
    shutil.copytree(model, landing, ignore=shutil.ignore_patterns("variables"))
    (landing / "variables").symlink_to("../../.shared/current/variables")
    os.rename(landing, incoming / "m" / "1")
    return incoming / "m" / "1"


def swap_weights(incoming: Path) -> None:
    """Point .shared/current at w2 in one rename, as a volume update does."""
    shared = incoming / ".shared"
    (shared / "current.new").symlink_to("w2")
    os.rename(shared / "current.new", shared / "current")


def test_the_fingerprints_follow_links_inside_the_base_to_their_content(
    tmp_path: Path, mlp_model: Path, retrained: Path
) -> None:
    incoming = tmp_path / "incoming"
    version = linked_version(incoming, mlp_model, retrained)
    link_text = os.readlink(version / "variables")
    before = content_fingerprint(version, links_within=incoming)
    settle_before = fingerprint(version, links_within=incoming)
    # A linked version is its content: a real copy (as publishing makes) matches it.
    copy = tmp_path / "copy"
    shutil.copytree(version, copy)
    assert not (copy / "variables").is_symlink()
    assert content_fingerprint(copy) == before

    swap_weights(incoming)
    assert os.readlink(version / "variables") == link_text
    assert content_fingerprint(version, links_within=incoming) != before
    assert fingerprint(version, links_within=incoming) != settle_before


def test_a_link_outside_the_base_is_still_not_followed(tmp_path: Path) -> None:
    incoming, outside = tmp_path / "incoming", tmp_path / "outside"
    (incoming / "m" / "1").mkdir(parents=True)
    (incoming / "m" / "1" / "saved_model.pb").write_bytes(b"graph")
    outside.mkdir()
    (outside / "secret").write_bytes(b"one")
    (incoming / "m" / "1" / "leak").symlink_to(outside / "secret")
    before = content_fingerprint(incoming / "m" / "1", links_within=incoming)
    (outside / "secret").write_bytes(b"two")  # never read: publishing refuses the link
    assert content_fingerprint(incoming / "m" / "1", links_within=incoming) == before
    assert [e[0] for e in fingerprint(incoming / "m" / "1", links_within=incoming)] == [
        "leak", "saved_model.pb"]


def test_a_version_is_not_settled_while_the_files_behind_its_link_change(
    tmp_path: Path, mlp_model: Path, retrained: Path
) -> None:
    incoming, clock = tmp_path / "incoming", ManualClock()
    linked_version(incoming, mlp_model, retrained)
    watcher = IncomingWatcher(incoming, settle_seconds=10.0, marker_file=None, clock=clock)
    assert [e.kind for e in watcher.scan()] == [WatchEventKind.APPEARED]
    clock.advance(6)
    (incoming / ".shared" / "w1" / "variables" / "variables.index").write_bytes(b"rewriting")
    assert watcher.scan() == []  # changed at t+6: the settle time starts again
    clock.advance(9)
    assert watcher.scan() == [] and watcher.waiting() == [("m", 1)]
    clock.advance(1)
    assert [e.kind for e in watcher.scan()] == [WatchEventKind.READY]


def test_swapping_the_weights_behind_a_link_is_a_changed_source(
    tmp_path: Path, mlp_model: Path, retrained: Path
) -> None:
    incoming = tmp_path / "incoming"
    linked_version(incoming, mlp_model, retrained)
    source = JobSource(incoming, "m", 1, named="model 'm' version 1000", is_served=bool)
    source.start()
    source.check()
    swap_weights(incoming)
    with pytest.raises(SourceChangedError, match="content fingerprint"):
        source.check()


@pytest.fixture
def linked_pipeline(pipeline: Pipeline, mlp_model: Path, retrained: Path) -> Pipeline:
    linked_version(pipeline.incoming, mlp_model, retrained)
    pipeline.journal.discover("m", served_version(1))
    return pipeline


def test_weights_swapped_behind_a_link_mid_job_are_never_published_as_the_old_model(
    linked_pipeline: Pipeline, mlp_model: Path, retrained: Path
) -> None:
    pipeline, served = linked_pipeline, served_version(1)
    [old] = session_outputs(mlp_model, [FEED])
    [expected] = session_outputs(retrained, [FEED])
    assert not np.allclose(old["output_0"], expected["output_0"], atol=1e-3)

    def swap_at(step: str) -> None:
        if step == "job-converting":
            swap_weights(pipeline.incoming)

    abandoned = pipeline.run("m", served, checkpoint_hook=swap_at)
    assert abandoned.state is JobState.DISCOVERED
    assert "changed in incoming while its job ran" in (abandoned.reason or "")
    assert not (pipeline.serving / "m" / str(served)).exists()

    again = pipeline.run("m", served)  # the service runs it again once the version settled
    assert again.state is JobState.PUBLISHED and again.flavour is Flavour.CONVERTED
    [got] = session_outputs(pipeline.serving / "m" / str(served), [FEED])
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6)
