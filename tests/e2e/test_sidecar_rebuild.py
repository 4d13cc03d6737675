"""Coverage-triggered rebuilds, end to end: the served version was built for batch 1,
traffic through the tap moves to batch 5, coverage falls, the sidecar rebuilds the
same incoming version for batch 5 under the next served number, TF Serving (the
test stand-in) serves it, and batch 5 runs a prebuilt engine there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from converter import ConversionParams, Converter
from sidecar.config import Address, load_settings
from sidecar.jobs.conversion import ConverterLike
from sidecar.service.loop import SidecarService
from sidecar.service.wiring import Seams, build_service
from sidecar.tfserving import numbering
from tests.metrics.stand import scrape, value
from tests.support.builders import warmup_batches
from tests.support.e2e import free_port, predict_mlp
from tests.support.tfserving_standin import StandinSettings, start_standin
from tests.support.waiting import wait_until

PROBE = Path(__file__).parent.parent / "support" / "xla_cache_probe.py"
FIRST, REBUILD = numbering.served_version(1), numbering.served_version(1, 1)


def _keeping_every_engine(directory: Path, tags: Sequence[str], key: str,
                          params: ConversionParams) -> ConverterLike:
    """The real converter, keeping engines that do not beat native on this busy CPU, so
    the test does not hang on a timing race (the keep decision has its own tests)."""
    return Converter(directory, list(tags), key, params._replace(keep_slower_engines=True))


def _cache_files_after(model: Path, cache: Path, batches: list[int]) -> list[int]:
    """Engine files in `cache` after each batch, in a fresh TF1-Session process."""
    done = subprocess.run([sys.executable, str(PROBE), str(model), str(cache), "16",
                           *map(str, batches)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [step["files"] for step in json.loads(done.stdout.strip().splitlines()[-1])]


@pytest.mark.timeout(420)
def test_new_traffic_shape_triggers_a_rebuild_that_serves_it_from_a_prebuilt_engine(
    tmp_path: Path, mlp_model: Path
) -> None:
    incoming, serving = tmp_path / "incoming", tmp_path / "serving"
    (serving / "mlp").mkdir(parents=True)
    shutil.copytree(mlp_model, incoming / "mlp" / "1")
    standin = start_standin(StandinSettings(
        model_name="mlp", model_base_path=serving / "mlp", file_system_poll_wait_seconds=0.2))
    config = tmp_path / "sidecar.toml"
    config.write_text(
        "[policy]\nserve_original_first = false\ndefault_batch_sizes = [1]\nmax_engines = 2\n"
        "rebuild_below_coverage = 0.8\nrebuild_after_seconds = 0\nrebuild_min_requests = 10\n")
    tap, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    settings = load_settings({
        "incoming": str(incoming), "serving": str(serving), "state": str(tmp_path / "state"),
        "engine_cache": str(tmp_path / "engines"),
        "model_config_file": str(tmp_path / "models.config"), "settle_seconds": 0,
        "rescan_interval_seconds": 0.2, "tap_listen": tap, "upstream": standin.address,
        "metrics_listen": metrics, "recorder_listen": f"127.0.0.1:{free_port()}",
        "envoy_admin_listen": f"127.0.0.1:{free_port()}",
    }, {}, config)
    parts = build_service(settings, Seams(converter_factory=_keeping_every_engine))
    stop = threading.Event()
    with SidecarService(settings, parts) as service:
        loop = threading.Thread(target=service.run, args=(stop,))
        loop.start()
        try:
            wait_until((serving / "mlp" / str(FIRST)).exists, 180, f"mlp/{FIRST} published")
            assert set(warmup_batches(serving / "mlp" / str(FIRST))) == {1}
            standin.wait_for_state("mlp", FIRST, "AVAILABLE", 60)

            for _ in range(12):  # traffic moves to batch 5: coverage 0 of 12
                assert predict_mlp(tap, 5).model_spec.version.value == FIRST

            wait_until((serving / "mlp" / str(REBUILD)).exists, 180, f"mlp/{REBUILD} published")
            standin.wait_for_state("mlp", REBUILD, "AVAILABLE", 60)
            assert predict_mlp(tap, 5).model_spec.version.value == REBUILD
            metrics_port = Address.parse(metrics, "metrics_listen").port
            wait_until(lambda: value(scrape(metrics_port), "tftrt_sidecar_shape_coverage_ratio",
                                     model="mlp", signature="serving_default") == 1.0,
                       30, "coverage of the rebuilt version")  # so no rebuild is due anymore
            samples = scrape(metrics_port)
        finally:
            stop.set()
            loop.join(timeout=120)
            standin.stop()
        journal = service.journal
        rebuild = journal.history("mlp", REBUILD)
    assert not loop.is_alive()
    rebuilds = {sample.labels["state"]: sample.value
                for sample in samples["tftrt_sidecar_rebuilds"] if sample.labels["model"] == "mlp"}
    assert {state: count for state, count in rebuilds.items() if count} == {"published": 1}
    assert sorted(int(p.name) for p in (serving / "mlp").iterdir() if p.name.isdigit()) == [
        FIRST, REBUILD]
    assert rebuild[0].reason is not None and rebuild[0].reason.startswith("coverage 0.00 below")
    assert rebuild[0].reason.endswith("not built for x:DT_FLOAT[5x16]"), rebuild[0].reason

    rebuilt = serving / "mlp" / str(REBUILD)
    assert set(warmup_batches(rebuilt)) == {5}
    report = json.loads((rebuilt / "assets.extra" / "tftrt" / "conversion.json").read_text())
    kept = [engine["shapes"] for segment in report["segments"]
            for engine in segment["engines"] if engine["kept"]]
    assert kept and all(shapes[0][0] == 5 for shapes in kept), kept

    # TF Serving's loader on an empty XLA cache: batch 5 compiles its prebuilt engine,
    # batch 3 (never built, no compiling at serving time) runs native ops.
    empty = tmp_path / "probe-cache"
    empty.mkdir()
    after_5, after_3 = _cache_files_after(rebuilt, empty, [5, 3])
    assert after_5 >= 1 and after_3 == after_5
    # With the engines the sidecar installed, batch 5 compiles nothing: a cache hit.
    installed = next(p.parent for p in (tmp_path / "engines").rglob("*.pb"))
    copy = tmp_path / "installed-copy"
    shutil.copytree(installed, copy)
    before = len(list(copy.glob("*.pb")))
    assert _cache_files_after(rebuilt, copy, [5]) == [before]
