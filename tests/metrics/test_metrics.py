"""The /metrics endpoint, scraped over HTTP and parsed, after real jobs, tap traffic and a
rollback."""

from __future__ import annotations

import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tensorflow as tf
from prometheus_client import REGISTRY, CollectorRegistry

from sidecar.config import Address, ModelPolicy
from sidecar.jobs import JobDependencies, run_version_job
from sidecar.metrics import MetricsServer
from sidecar.metrics.collectors import VersionStateCollector
from sidecar.state import Flavour, JobJournal, JobState
from sidecar.tfserving.numbering import served_version
from tests.metrics.stand import (
    ENGINE_CACHE_FILE_BYTES,
    MetricsStand,
    run_converted_job,
    scrape,
    scrape_proxy,
    send_tap_traffic,
    value,
)
from tests.recorder.conftest import LoopThread
from tests.support.builders import converter_with_a_bug
from tests.support.waiting import wait_until


def test_job_tap_and_rollback_metrics(
    metrics_stand: MetricsStand, mlp_model: Path, event_loop_thread: LoopThread
) -> None:
    stand = metrics_stand
    served = served_version(1)
    result = run_converted_job(stand, mlp_model, "mlp", 1)
    assert result.state is JobState.PUBLISHED and result.flavour is Flavour.CONVERTED
    assert result.version == served
    samples = scrape(stand.server.port)

    info = value(samples, "tftrt_sidecar_build_info", backend="auto")
    assert info == 1.0
    [build] = samples["tftrt_sidecar_build_info"]
    assert build.labels["tensorflow_version"] == tf.__version__
    assert value(samples, "tftrt_sidecar_conversions_total", model="mlp", result="converted") == 1
    assert value(samples, "tftrt_sidecar_publishes_total", model="mlp", flavour="converted") == 1
    assert value(samples, "tftrt_sidecar_versions", model="mlp", state="published") == 1
    assert value(samples, "tftrt_sidecar_versions", model="mlp", state="failed") == 0
    for stage in ("converting", "building", "verifying"):
        assert value(samples, "tftrt_sidecar_stage_duration_seconds_count",
                     stage=stage, outcome="ok") == 1
    kept = result.engines_kept
    assert kept >= 2, "keep_slower_engines keeps one engine per replayed batch size"
    assert value(samples, "tftrt_sidecar_engines_built_total", model="mlp", kept="true") == kept
    assert value(samples, "tftrt_sidecar_engine_build_duration_seconds_count") == kept
    assert value(samples, "tftrt_sidecar_engine_build_duration_seconds_sum") > 0
    assert value(samples, "tftrt_sidecar_published_version_engines",
                 model="mlp", version=str(served)) == kept
    assert value(samples, "tftrt_sidecar_engine_cache_bytes",
                 namespace="tf-2.17.0/gpu-test") == ENGINE_CACHE_FILE_BYTES
    assert result.engines is not None
    assert value(samples, "tftrt_sidecar_engine_cache_bytes",
                 namespace=result.engines.namespace) >= 0

    assert send_tap_traffic(stand, event_loop_thread, "mlp", served, [1, 8, 8, 3]) == 4
    samples = scrape(stand.server.port)
    assert value(samples, "tftrt_sidecar_tap_requests_total", model="mlp", prebuilt="true") == 3
    assert value(samples, "tftrt_sidecar_tap_requests_total", model="mlp", prebuilt="false") == 1
    assert value(samples, "tftrt_sidecar_shape_coverage_ratio",
                 model="mlp", signature="serving_default") == pytest.approx(0.75)
    # The calls themselves are Envoy's to count, on its own stats listener (the parser
    # names a counter's sample with _total).
    proxy = scrape_proxy(stand.proxy_stats)
    assert value(proxy, "envoy_cluster_upstream_rq_completed_total",
                 envoy_cluster_name="tf_serving_grpc") == 4
    def timed() -> float:  # Envoy's histograms show what its last stats flush saw (5 s)
        return value(scrape_proxy(stand.proxy_stats), "envoy_cluster_upstream_rq_time_count",
                     envoy_cluster_name="tf_serving_grpc")

    wait_until(lambda: timed() >= 4, 15, "Envoy's latency histogram")
    assert timed() == 4

    stand.metrics.rolled_back("mlp", served_version(2), served)
    samples = scrape(stand.server.port)
    assert value(samples, "tftrt_sidecar_rollbacks_total", model="mlp") == 1


def test_failed_job_is_counted(
    metrics_stand: MetricsStand, mlp_model: Path, event_loop_thread: LoopThread
) -> None:
    stand = metrics_stand
    broken = stand.incoming / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"garbage")
    stand.journal.discover("broken", served_version(1))
    deps = JobDependencies(journal=stand.journal, publisher=stand.publisher,
                           incoming_base=stand.incoming, engine_cache_dir=stand.engine_cache,
                           observer=stand.metrics.job_observer)
    result = run_version_job(deps, "broken", served_version(1), ModelPolicy())
    assert result.state is JobState.FAILED
    samples = scrape(stand.server.port)
    assert value(samples, "tftrt_sidecar_conversions_total", model="broken", result="failed") == 1
    assert value(samples, "tftrt_sidecar_stage_duration_seconds_count",
                 stage="converting", outcome="failed") == 1
    assert value(samples, "tftrt_sidecar_versions", model="broken", state="failed") == 1


def test_a_bug_in_a_job_is_counted_as_an_internal_error(
    metrics_stand: MetricsStand, mlp_model: Path
) -> None:
    stand = metrics_stand
    shutil.copytree(mlp_model, stand.incoming / "buggy" / "1")
    stand.journal.discover("buggy", served_version(1))
    deps = JobDependencies(journal=stand.journal, publisher=stand.publisher,
                           incoming_base=stand.incoming, engine_cache_dir=stand.engine_cache,
                           observer=stand.metrics.job_observer,
                           converter_factory=converter_with_a_bug)
    result = run_version_job(deps, "buggy", served_version(1),
                             ModelPolicy(serve_original_first=False))
    assert result.flavour is Flavour.ORIGINAL, result.reason
    samples = scrape(stand.server.port)
    assert value(samples, "tftrt_sidecar_internal_errors_total", stage="building") == 1
    assert value(samples, "tftrt_sidecar_conversions_total", model="buggy",
                 result="original") == 1


def test_metrics_use_only_their_own_registry(metrics_stand: MetricsStand) -> None:
    default_names = {family.name for family in REGISTRY.collect()}
    assert not any(name.startswith("tftrt_sidecar") for name in default_names)
    samples = scrape(metrics_stand.server.port)
    assert all(name.startswith("tftrt_sidecar_") for name in samples)


def test_unreadable_sources_leave_their_metric_out_instead_of_failing(
    metrics_stand: MetricsStand,
) -> None:
    metrics_stand.journal.close()
    samples = scrape(metrics_stand.server.port)
    assert "tftrt_sidecar_versions" not in samples
    assert "tftrt_sidecar_build_info" in samples


def test_server_stops_and_frees_its_port() -> None:
    server = MetricsServer(Address("127.0.0.1", 0), CollectorRegistry())
    server.start()
    port = server.port
    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).close()
    server.stop()
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
    with socket.socket() as probe:
        # SO_REUSEADDR lets the bind past connections left in TIME_WAIT, not past a
        # socket still listening there: the bind fails only if the server kept it.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()


def test_the_port_is_the_listen_address_one_until_bound() -> None:
    assert MetricsServer(Address("0.0.0.0", 9102), CollectorRegistry()).port == 9102
    assert MetricsServer(Address("::1", 9102), CollectorRegistry()).port == 9102


def test_the_converted_form_of_an_original_served_first_is_no_rebuild(tmp_path: Path) -> None:
    with JobJournal.open(tmp_path / "state", clock=time.time) as journal:
        journal.discover("m", 1000)
        for state in (JobState.CONVERTING, JobState.VERIFYING):
            journal.advance("m", 1000, state)
        journal.choose_flavour("m", 1000, Flavour.ORIGINAL, why="served first", converted_as=1001)
        journal.advance("m", 1000, JobState.PUBLISHED)  # queues 1001, its converted form
        journal.discover("m", 1002, reason="a rebuild")
        families = {family.name: family for family in VersionStateCollector(journal).collect()}
    rebuilds = {sample.labels["state"]: sample.value for sample in families[
        "tftrt_sidecar_rebuilds"].samples if sample.labels["model"] == "m"}
    versions = {sample.labels["state"]: sample.value for sample in families[
        "tftrt_sidecar_versions"].samples if sample.labels["model"] == "m"}
    assert rebuilds["discovered"] == 1 and versions["discovered"] == 2
