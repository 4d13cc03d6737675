# mypy: disable-error-code="import-untyped"
"""Every rendered manifest against the pinned Kubernetes schema; the prometheus-operator
resources (CRDs the schema does not know) structurally and with promtool."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import KUBERNETES_VERSION, OVERLAYS, Rendered
from tests.deploy.rendering import render

CORE_KINDS = {
    "ConfigMap", "PersistentVolumeClaim", "Deployment", "PodDisruptionBudget", "Service",
    "NetworkPolicy",
}
AUTOSCALED = {"autoscaled": {"HorizontalPodAutoscaler"}}
"""Overlays with kinds beyond the core and CRD ones."""
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
ALERTS = {
    "TftrtSidecarConversionsFailing": 'tftrt_sidecar_conversions_total{result="failed"}',
    "TftrtSidecarShapeCoverageLow": "tftrt_sidecar_shape_coverage_ratio",
    "TftrtSidecarTapUpstreamErrors": "envoy_cluster_upstream_rq_xx",
    "TftrtSidecarStorageFault": "tftrt_sidecar_storage_fault",
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_manifests_validate_against_the_pinned_schema(rendered, overlay):
    kinds = set()
    for manifest in rendered[overlay].manifests:
        kinds.add(manifest["kind"])
        if manifest["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert kinds == CORE_KINDS | CRD_KINDS | AUTOSCALED.get(overlay, set())


def test_the_schema_check_catches_a_wrong_field(rendered):
    deployment = copy.deepcopy(rendered["cpu"].one("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_a_patch_against_a_moved_element_fails_to_render(tmp_path: Path):
    """The overlays pin what their JSON patches change with "test" operations: kustomize
    refuses to render when the base moved the element, instead of patching the wrong one."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "kustomization.yaml").write_text("resources: [deployment.yaml]\n")
    (base / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n"
        "    spec:\n      containers:\n        - {name: b, image: b}\n"
        "        - {name: a, image: a}\n")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources: [../base]\npatches:\n  - target: {kind: Deployment, name: d}\n"
        "    patch: |-\n      - {op: test, path: /spec/template/spec/containers/0/name, "
        "value: a}\n      - {op: add, path: /spec/template/spec/containers/0/args, "
        "value: [--x]}\n")
    with pytest.raises(AssertionError, match="testing value"):
        render(overlay)
    (overlay / "kustomization.yaml").write_text(
        (overlay / "kustomization.yaml").read_text().replace("value: a}", "value: b}"))
    containers = render(overlay)[0]["spec"]["template"]["spec"]["containers"]
    assert containers[0] == {"name": "b", "image": "b", "args": ["--x"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_monitor_selects_the_metrics_service(rendered, overlay):
    view = rendered[overlay]
    monitor = view.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = view.one("Service", "tftrt-sidecar-metrics")
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    endpoints = {e["port"]: e["path"] for e in monitor["spec"]["endpoints"]}
    assert endpoints == {"metrics": "/metrics", "proxy-metrics": "/stats/prometheus"}
    assert set(endpoints) == {p["name"] for p in service["spec"]["ports"]}
    selected = [
        s["metadata"]["name"] for s in view.all("Service")
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert selected == ["tftrt-sidecar-metrics"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_rule_has_the_three_alerts(rendered, overlay):
    rule = rendered[overlay].one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    rules = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert {r["alert"] for r in rules} == set(ALERTS)
    for item in rules:
        assert ALERTS[item["alert"]] in item["expr"]
        assert item["labels"]["severity"] in {"warning", "critical"}
        assert item["annotations"]["summary"] and item["annotations"]["description"]


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: .ci/run installs Debian's prometheus, which has it"
    return found


def test_alert_rules_pass_promtool_and_fire_on_their_series(rendered, tmp_path: Path):
    rule = rendered["cpu"].one("PrometheusRule")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    checked = subprocess.run(
        [_promtool(), "check", "rules", str(rules_file)], capture_output=True, text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    where = {"namespace": "serving", "pod": "tftrt-serving-0"}
    series = "{namespace=\"serving\", pod=\"tftrt-serving-0\""
    tests = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                # One failed conversion a minute; published ones must not count.
                {"series": f'tftrt_sidecar_conversions_total{series}, result="failed"}}',
                 "values": "0+1x60"},
                {"series": f'tftrt_sidecar_conversions_total{series}, result="published"}}',
                 "values": "0+5x60"},
                {"series": f'tftrt_sidecar_shape_coverage_ratio{series}, model="m"}}',
                 "values": "0.5x60"},
                # One call a second Envoy could not get TF Serving's answer to.
                {"series": f'envoy_cluster_upstream_rq_xx{series}, '
                           'envoy_cluster_name="tf_serving_grpc", envoy_response_code_class="5"}',
                 "values": "0+60x60"},
                # Another pod whose clients give up on ten calls a second (Envoy counts them
                # as downstream resets), the rest answered: not an alert.
                {"series": 'envoy_http_downstream_rq_rx_reset{namespace="serving", '
                           'pod="tftrt-serving-1", envoy_http_conn_manager_prefix="tftrt_grpc"}',
                 "values": "0+600x60"},
                {"series": 'envoy_cluster_upstream_rq_xx{namespace="serving", '
                           'pod="tftrt-serving-1", envoy_cluster_name="tf_serving_grpc", '
                           'envoy_response_code_class="2"}',
                 "values": "0+600x60"},
                # The state disk full for 8 minutes; incoming healthy throughout.
                {"series": f'tftrt_sidecar_storage_fault{series}, area="state"}}',
                 "values": "0 1x8 0x51"},
                {"series": f'tftrt_sidecar_storage_fault{series}, area="incoming"}}',
                 "values": "0x60"},
            ],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "TftrtSidecarConversionsFailing",
                 "exp_alerts": []},
                {"eval_time": "10m", "alertname": "TftrtSidecarConversionsFailing",
                 "exp_alerts": [_expected(rule, "TftrtSidecarConversionsFailing", where)]},
                {"eval_time": "20m", "alertname": "TftrtSidecarShapeCoverageLow",
                 "exp_alerts": []},
                {"eval_time": "40m", "alertname": "TftrtSidecarShapeCoverageLow",
                 "exp_alerts": [_expected(rule, "TftrtSidecarShapeCoverageLow",
                                          {**where, "model": "m"}, value="50%")]},
                {"eval_time": "10m", "alertname": "TftrtSidecarTapUpstreamErrors",
                 "exp_alerts": [_expected(rule, "TftrtSidecarTapUpstreamErrors", where)]},
                {"eval_time": "3m", "alertname": "TftrtSidecarStorageFault", "exp_alerts": []},
                {"eval_time": "7m", "alertname": "TftrtSidecarStorageFault",
                 "exp_alerts": [_expected(rule, "TftrtSidecarStorageFault",
                                          {**where, "area": "state"})]},
                {"eval_time": "15m", "alertname": "TftrtSidecarStorageFault", "exp_alerts": []},
            ],
        }],
    }
    tests_file = tmp_path / "rules_test.yaml"
    tests_file.write_text(yaml.safe_dump(tests))
    tested = subprocess.run(
        [_promtool(), "test", "rules", str(tests_file)], capture_output=True, text=True,
        timeout=60,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def _expected(rule, alert: str, labels: dict[str, str], value: str = "") -> dict[str, object]:
    """The alert promtool should see: its labels, and annotations with templates filled."""
    (item,) = [r for g in rule["spec"]["groups"] for r in g["rules"] if r["alert"] == alert]
    annotations = {
        key: text.replace("{{ $labels.pod }}", labels["pod"])
        .replace("{{ $labels.area }}", labels.get("area", ""))
        .replace("{{ $value | humanizePercentage }}", value)
        for key, text in item["annotations"].items()
    }
    return {"exp_labels": {**labels, **item["labels"]}, "exp_annotations": annotations}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_is_labelled_and_named(rendered: dict[str, Rendered], overlay):
    for manifest in rendered[overlay].manifests:
        assert manifest["metadata"]["labels"]["app.kubernetes.io/name"] == "tftrt-serving"
        assert manifest["metadata"]["name"].startswith("tftrt-")
