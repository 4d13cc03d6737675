"""In-graph dispatch, checked by XLA's own compile cache in a serving-like process."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

import converter as trt
from converter.savedmodel.synthetic import batch_input_fn

PROBE = pathlib.Path(__file__).parents[2] / "support" / "xla_cache_probe.py"
FEATURES = 16  # the test MLP's input width


def _probe(model: pathlib.Path, cache: pathlib.Path, *batches: int) -> list[dict[str, float]]:
    cache.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, str(PROBE), str(model), str(cache), str(FEATURES),
         *map(str, batches)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def converted(mlp_dir: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The MLP with engines prebuilt for batches 1 and 8; other shapes run native."""
    converter = trt.Converter(mlp_dir, conversion_params=trt.ConversionParams(
        maximum_cached_engines=2, allow_build_at_runtime=False, keep_slower_engines=True))
    converter.convert()
    converter.build(batch_input_fn(converter.input_specs, [8, 1, 8]))
    output = tmp_path_factory.mktemp("dispatch") / "converted"
    converter.save(output)
    (segment,) = converter.report().segments
    assert sorted(segment.prebuilt) == [[[1, FEATURES]], [[8, FEATURES]]]
    return output


def test_prebuilt_shape_runs_its_engine_and_others_compile_nothing(
        converted: pathlib.Path, tmp_path: pathlib.Path) -> None:
    # An empty cache: the prebuilt shape compiles (so it does run an engine)...
    first, other, again = _probe(converted, tmp_path / "empty", 8, 3, 5)
    assert first["files"] == 1
    # ... and shapes that were not prebuilt run native: nothing more is compiled.
    assert other["files"] == 1 and again["files"] == 1


def test_installed_engines_are_found_by_a_fresh_serving_process(
        converted: pathlib.Path, tmp_path: pathlib.Path) -> None:
    result = trt.install_engines(converted, tmp_path / "cache")
    assert result.installed == 2 and result.directory.is_dir()
    assert trt.install_engines(converted, tmp_path / "cache").already_present == 2
    # Both prebuilt shapes hit the installed engines: no new cache entry appears.
    runs = _probe(converted, result.directory, 8, 1, 3)
    assert [r["files"] for r in runs] == [2, 2, 2]


def test_build_at_runtime_compiles_new_shapes(mlp_dir: pathlib.Path,
                                              tmp_path: pathlib.Path) -> None:
    """The contrast that makes the test above meaningful: with build at runtime,
    a new shape does compile an engine in the serving process."""
    converter = trt.Converter(mlp_dir, conversion_params=trt.ConversionParams(
        allow_build_at_runtime=True))
    converter.convert()
    converter.save(tmp_path / "lazy")
    runs = _probe(tmp_path / "lazy", tmp_path / "cache", 3, 5)
    assert [r["files"] for r in runs] == [1, 2]


def test_engines_for_another_device_are_not_installed(converted: pathlib.Path,
                                                      tmp_path: pathlib.Path) -> None:
    other = trt.BuildDevice(kind="GPU", model="NVIDIA H100 sm90")
    result = trt.install_engines(converted, tmp_path / "cache", device=other)
    assert result.installed == 0
    assert "no engines for" in result.note and "gpu-nvidia-h100-sm90" in result.note


def test_engines_restricted_to_winning_shapes_run_native_elsewhere(
        mlp_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """What build() does when engines won at some measured shape sets only
    (`restrict_engines`): the engine runs for those shapes, every other shape runs
    native, even with build at runtime allowed."""
    from converter.backend import choose_backend
    from converter.graph.inline import function_from_flat
    from converter.savedmodel.loading import load_signature
    from converter.savedmodel.saving import write_signatures
    from converter.xla.building import restrict_engines
    from converter.xla.conversion import XlaConversion

    params = trt.ConversionParams(allow_build_at_runtime=True)
    converter = XlaConversion(load_signature(mlp_dir), params, choose_backend(params),
                              trt.detect_build_device())
    converter.convert(None)
    flat, loaded, segments = converter._flat, converter._model, converter._segments
    assert flat is not None
    boundary = [t for s in segments for t in s.graph.segment.inputs]
    probe = function_from_flat(flat, flat.graph_def, loaded.function, outputs=boundary)
    (eight,) = batch_input_fn(converter.input_specs, [8])()
    restrict_engines(segments, probe, [eight], maximum_cached_engines=1)
    assert [s.plan.prebuilt for s in segments] == [(((8, FEATURES),),)]
    converter._converted = converter._assemble()
    write_signatures(loaded, converter._signatures(with_engines=True), tmp_path / "out")
    first, other, again = _probe(tmp_path / "out", tmp_path / "cache", 8, 1, 3)
    assert [first["files"], other["files"], again["files"]] == [1, 1, 1]
