"""Fleet-wide shapes: each replica's recorded counts (a real shape store) in its own file of
the store, merged over the fresh ones; a replica that went away ages out."""

from __future__ import annotations

import time
from pathlib import Path

from sidecar.fleet.shapes import encode_contribution, merge_contributions, recorded_counts
from sidecar.fleet.shared_dir import SharedDirectoryStore
from sidecar.shapes import ShapeObservation, ShapeSet, ShapeStore, ShapeStoreSettings, TensorSpec
from tests.fleet.conftest import open_store

HORIZON = 0.5


def _batch(size: int) -> ShapeSet:
    return ShapeSet.of({"x": TensorSpec("DT_FLOAT", (size, 16))})


def _replica(tmp_path: Path, name: str, batches: dict[int, int], written_at: float
             ) -> tuple[SharedDirectoryStore, bytes]:
    """A replica that recorded ``batches`` (batch size -> requests) in a real shape store,
    and its contribution file stamped ``written_at``."""
    state = tmp_path / name
    state.mkdir()
    with ShapeStore(state, ShapeStoreSettings(), time.time) as shapes:
        shapes.record([ShapeObservation("mlp", "serving_default", _batch(size), time.time())
                       for size, count in batches.items() for _ in range(count)])
        data = encode_contribution(name, written_at, recorded_counts(shapes))
    return open_store(tmp_path / "store", name), data


def test_contributions_merge_and_a_replica_that_went_away_ages_out(tmp_path: Path) -> None:
    """The merge is given the reader's clock (``now``), so the horizon is exact here."""
    started = time.time()
    staying, staying_data = _replica(tmp_path, "staying", {1: 3, 8: 1}, started)
    leaving, leaving_data = _replica(tmp_path, "leaving", {8: 2, 32: 5}, started)
    staying.contribute_shapes(staying_data)
    leaving.contribute_shapes(leaving_data)
    (tmp_path / "store" / "shapes" / "stranger.json").write_bytes(b"not a contribution")

    merged = merge_contributions(staying.shape_contributions(), now=started + HORIZON,
                                 horizon_seconds=HORIZON)
    assert merged.contributors == ("leaving", "staying") and merged.ignored == ("stranger",)
    assert merged.shape_set_counts("mlp", "serving_default") == [
        (_batch(1), 3), (_batch(32), 5), (_batch(8), 3)]
    assert merged.top_shape_sets("mlp", "serving_default", 1).shape_sets == [_batch(32)]
    assert merged.coverage("mlp", "serving_default", [_batch(8)]).share == 3 / 11
    assert merged.signatures() == [("mlp", "serving_default")]

    # The staying replica writes again later; the leaving one wrote its last file.
    later = started + HORIZON + 1
    staying.contribute_shapes(encode_contribution(
        "staying", later, {("mlp", "serving_default"): [(_batch(1), 4)]}))
    fresh = merge_contributions(leaving.shape_contributions(), now=later,
                                horizon_seconds=HORIZON)
    assert fresh.contributors == ("staying",)
    assert set(fresh.ignored) == {"leaving", "stranger"}
    assert fresh.shape_set_counts("mlp", "serving_default") == [(_batch(1), 4)]
