# mypy: disable-error-code="import-untyped"
"""End to end with a real Prometheus: Debian's ``prometheus`` scrapes the sidecar's /metrics
every second while a real conversion runs and traffic goes through the tap; then its HTTP
query API must show the series with the values the sidecar produced."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.state import JobState
from sidecar.tfserving.numbering import served_version
from tests.metrics.stand import (
    MetricsStand,
    open_metrics_stand,
    run_converted_job,
    send_calls_clients_give_up_on,
    send_tap_traffic,
)
from tests.recorder.conftest import LoopThread
from tests.support.e2e import free_port
from tests.support.waiting import wait_until

PROMETHEUS = shutil.which("prometheus")
JOB = "tftrt-sidecar"
PROXY_JOB = "tftrt-envoy"
REPO = Path(__file__).resolve().parents[2]


def _alert_expression(name: str) -> str:
    """The expression of alert ``name`` in k8s/base/prometheusrule.yaml."""
    rule = yaml.safe_load((REPO / "k8s/base/prometheusrule.yaml").read_text())
    (expression,) = (item["expr"] for group in rule["spec"]["groups"]
                     for item in group["rules"] if item["alert"] == name)
    return str(expression)


UPSTREAM_ERRORS_ALERT = _alert_expression("TftrtSidecarTapUpstreamErrors")

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="needs Debian's prometheus package (.ci/run installs it)"
)


@pytest.fixture()
def metrics_stand(tmp_path: Path) -> Iterator[MetricsStand]:
    """Real journal, serving base, shape store and engine cache; metrics on a free port."""
    stand = open_metrics_stand(tmp_path / "sidecar")
    yield stand
    stand.close()


@pytest.fixture(scope="module")
def event_loop_thread() -> Iterator[LoopThread]:
    """An asyncio loop on a thread, for the tap."""
    runner = LoopThread()
    yield runner
    runner.close()


@pytest.fixture()
def prometheus(tmp_path: Path, metrics_stand: MetricsStand) -> Iterator[str]:
    """A Prometheus server scraping the stand's /metrics every second; yields its base URL."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: {JOB}\n    scrape_timeout: 1s\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_stand.server.port}']\n"
        f"  - job_name: {PROXY_JOB}\n    scrape_timeout: 1s\n"
        f"    metrics_path: /stats/prometheus\n"
        f"    static_configs:\n      - targets: ['{metrics_stand.proxy_stats}']\n"
    )
    port = free_port()
    assert PROMETHEUS is not None
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(f"{url}/-/ready"), 30,
                   f"Prometheus ready (its log: {tmp_path / 'prometheus.log'})", interval=0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bytes(response.read())
    except OSError:
        return None


def _query(url: str, expression: str) -> list[dict[str, Any]]:
    body = _get(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
    if body is None:
        return []
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def _scalar(url: str, expression: str, expected: float, timeout: float = 20) -> None:
    """Wait until Prometheus's value of ``expression`` (one series) equals ``expected``."""
    def current() -> float | None:
        result = _query(url, expression)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    wait_until(current, timeout, f"{expression} = {expected} in Prometheus",
               done=lambda value: value == expected, interval=0.25)


def test_prometheus_scrapes_conversions_and_tap_traffic(
    metrics_stand: MetricsStand, prometheus: str, mlp_model: Path,
    event_loop_thread: LoopThread,
) -> None:
    _scalar(prometheus, f'up{{job="{JOB}"}}', 1.0)
    served = served_version(1)
    result = run_converted_job(metrics_stand, mlp_model, "mlp", 1)
    assert result.state is JobState.PUBLISHED and result.version == served
    assert send_tap_traffic(metrics_stand, event_loop_thread, "mlp", served, [1, 8, 5]) == 3

    _scalar(prometheus, 'tftrt_sidecar_conversions_total{model="mlp",result="converted"}', 1.0)
    _scalar(prometheus, 'tftrt_sidecar_versions{model="mlp",state="published"}', 1.0)
    _scalar(prometheus, 'tftrt_sidecar_tap_requests_total{model="mlp",prebuilt="true"}', 2.0)
    _scalar(prometheus, 'tftrt_sidecar_tap_requests_total{model="mlp",prebuilt="false"}', 1.0)
    _scalar(prometheus, 'envoy_cluster_upstream_rq_time_count'
            '{envoy_cluster_name="tf_serving_grpc"}', 3.0)
    _scalar(prometheus,
            'round(tftrt_sidecar_shape_coverage_ratio{model="mlp"} * 3)', 2.0)
    _scalar(prometheus, 'tftrt_sidecar_published_version_engines'
            f'{{model="mlp",version="{served}"}}', float(result.engines_kept))
    _scalar(prometheus, 'sum(tftrt_sidecar_stage_duration_seconds_count{outcome="ok"})', 3.0)
    assert _query(prometheus, 'tftrt_sidecar_stage_duration_seconds_sum{stage="building"} > 0')
    [build] = _query(prometheus, "tftrt_sidecar_build_info")
    assert build["metric"]["job"] == JOB and build["metric"]["backend"] == "auto"
    # The alert expressions of k8s/base/prometheusrule.yaml evaluate against these series.
    assert _query(prometheus, 'sum by (job) (rate(tftrt_sidecar_conversions_total'
                              '{result="failed"}[30m])) > 0') == []
    assert _query(prometheus, "tftrt_sidecar_shape_coverage_ratio < 0.9")

    # A client's own expired deadline and a refused config reload are counted apart by
    # Envoy; the critical alert's expression (upstream errors) stays empty.
    send_calls_clients_give_up_on(metrics_stand, "mlp")
    # At least the expired call: a client channel closing with a stream open resets it too.
    wait_until(lambda: _query(prometheus, 'envoy_http_downstream_rq_rx_reset'
                              '{envoy_http_conn_manager_prefix="tftrt_grpc"} >= 1'), 20,
               "Envoy's count of reset client streams in Prometheus", interval=0.25)
    _scalar(prometheus, 'envoy_http_rq_direct_response'
            '{envoy_http_conn_manager_prefix="tftrt_grpc"}', 1.0)
    assert _query(prometheus, UPSTREAM_ERRORS_ALERT) == []
