# mypy: disable-error-code="import-untyped"
"""The fleet as the manifests deploy it: replicas sharing one store and incoming base on a
ReadWriteMany claim, each with its own serving base and state, rolled out without
downtime, disrupted one at a time, optionally autoscaled; and the single-pod overlay, one
pod on ReadWriteOnce claims without a store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from sidecar.service.wiring import FLEET_HEALTH_SERVICE
from tests.deploy.conftest import (
    FLEET_OVERLAYS,
    K8S,
    KUBERNETES_VERSION,
    OVERLAYS,
    SINGLE_POD_OVERLAYS,
    Rendered,
)
from tests.deploy.pod_settings import POD_NAME, covering_mount, sidecar_flags, sidecar_settings
from tests.deploy.rendering import render

FIXED = ("cpu", "gpu", "tf217-tensorrt")
"""Fleet overlays with the base's fixed replica count (no autoscaler)."""


def _claim(view: Rendered, volume: str) -> dict[str, Any]:
    """The PersistentVolumeClaim behind the pod volume ``volume``."""
    name = view.volume(volume)["persistentVolumeClaim"]["claimName"]
    return view.one("PersistentVolumeClaim", name)


def _pod_labels(view: Rendered) -> dict[str, str]:
    labels: dict[str, str] = view.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("overlay", FLEET_OVERLAYS)
def test_a_rollout_starts_a_pod_before_it_stops_one(rendered, overlay):
    spec = rendered[overlay].one("Deployment")["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    if overlay in FIXED:
        assert spec["replicas"] == 3
    else:  # the autoscaler alone sets the count
        assert "replicas" not in spec


@pytest.mark.parametrize("overlay", FLEET_OVERLAYS)
def test_store_and_incoming_share_one_read_write_many_claim(rendered, overlay, tmp_path):
    view = rendered[overlay]
    settings = sidecar_settings(view, tmp_path)
    assert settings.fleet.store is not None
    _, flags = sidecar_flags(view)
    assert flags["--store"] == str(settings.fleet.store)
    store = covering_mount(view, "tftrt-sidecar", settings.fleet.store)
    incoming = covering_mount(view, "tftrt-sidecar", settings.paths.incoming_base)
    assert store["name"] == incoming["name"]
    # Side by side on the claim: neither holds the other (a store inside incoming would
    # be watched as a model, incoming inside the store would be read-only for the store).
    store_dir, incoming_dir = (Path(m["subPath"]) for m in (store, incoming))
    assert store_dir not in (incoming_dir, *incoming_dir.parents)
    assert incoming_dir not in store_dir.parents
    assert incoming["readOnly"] is True and not store.get("readOnly", False)
    claim = _claim(view, store["name"])
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    # The class is the user's to set (their NFS, EFS, Filestore or CephFS class).
    assert "storageClassName" not in claim["spec"]
    assert [c["metadata"]["name"] for c in view.all("PersistentVolumeClaim")] == [
        claim["metadata"]["name"]]
    others = {m["name"] for c in ("tf-serving", "envoy", "prepare-pod", "envoy-bootstrap")
              for m in view.mounts(c).values()}
    assert store["name"] not in others


@pytest.mark.parametrize("overlay", FLEET_OVERLAYS)
def test_serving_base_and_state_are_each_pods_own(rendered, overlay, tmp_path):
    view = rendered[overlay]
    settings = sidecar_settings(view, tmp_path)
    for path in (settings.paths.serving_base, settings.paths.state_dir):
        volume = view.volume(covering_mount(view, "tftrt-sidecar", path)["name"])
        assert set(volume) == {"name", "emptyDir"}, volume
        # On the node's disk, not in memory: a serving base holds whole models.
        assert "medium" not in volume["emptyDir"] and volume["emptyDir"]["sizeLimit"]
    serving = covering_mount(view, "tf-serving", settings.paths.serving_base)
    sidecar = covering_mount(view, "tftrt-sidecar", settings.paths.serving_base)
    assert serving["name"] == sidecar["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_replica_is_named_after_its_pod(rendered, overlay, tmp_path):
    view = rendered[overlay]
    assert sidecar_settings(view, tmp_path).fleet.replica_id == POD_NAME
    assert "--replica-id" not in sidecar_flags(view)[1]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruptions_take_one_replica_at_a_time(rendered, overlay):
    view = rendered[overlay]
    budget = view.one("PodDisruptionBudget")
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector.items() <= _pod_labels(view).items()
    assert selector == view.one("Deployment")["spec"]["selector"]["matchLabels"]
    # One at a time at any scale; never more than there are replicas to keep (a budget
    # a single pod could not meet would block every node drain).
    assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]
    (spread,) = view.pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"].items() <= _pod_labels(view).items()


def test_the_autoscaler_scales_the_deployment_on_tf_servings_cpu(rendered):
    view = rendered["autoscaled"]
    autoscaler = view.one("HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    deployment = view.one("Deployment")
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"], "kind": "Deployment",
        "name": deployment["metadata"]["name"]}
    assert autoscaler["spec"]["minReplicas"] == 3
    assert autoscaler["spec"]["maxReplicas"] > autoscaler["spec"]["minReplicas"]
    (metric,) = autoscaler["spec"]["metrics"]
    assert metric["type"] == "ContainerResource"
    resource = metric["containerResource"]
    assert resource["name"] == "cpu" and resource["target"]["type"] == "Utilization"
    # Utilization is measured against the container's request, which must be there.
    assert view.container(resource["container"])["resources"]["requests"]["cpu"]
    assert resource["container"] == "tf-serving"
    for overlay in FIXED:
        assert not rendered[overlay].all("HorizontalPodAutoscaler"), overlay


@pytest.mark.parametrize("overlay", SINGLE_POD_OVERLAYS)
def test_single_pod_works_alone_on_read_write_once_claims(rendered, overlay, tmp_path):
    view = rendered[overlay]
    spec = view.one("Deployment")["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    settings = sidecar_settings(view, tmp_path)
    assert settings.fleet.store is None
    assert "--store" not in sidecar_flags(view)[1]
    paths = (settings.paths.incoming_base, settings.paths.serving_base, settings.paths.state_dir)
    mounts = [covering_mount(view, "tftrt-sidecar", path) for path in paths]
    assert [m["mountPath"] for m in mounts] == [str(path) for path in paths]
    assert all("subPath" not in m for m in mounts)
    claims = [_claim(view, m["name"]) for m in mounts]
    assert all(c["spec"]["accessModes"] == ["ReadWriteOnce"] for c in claims)
    assert {c["metadata"]["name"] for c in claims} == {
        c["metadata"]["name"] for c in view.all("PersistentVolumeClaim")}
    assert len(claims) == 3
    assert view.one("PodDisruptionBudget")["spec"]["maxUnavailable"] >= spec["replicas"]


@pytest.mark.parametrize("component", ["single-pod", "autoscaled"])
def test_components_apply_to_the_gpu_overlay(component, tmp_path):
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        f"resources: [{os.path.relpath(K8S / 'overlays' / 'gpu', overlay)}]\n"
        f"components: [{os.path.relpath(K8S / 'components' / component, overlay)}]\n")
    view = Rendered(f"gpu + {component}", render(overlay))
    for manifest in view.manifests:
        if not manifest["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert view.container("tftrt-sidecar")["resources"]["limits"]["nvidia.com/gpu"] == "1"
    flags = sidecar_flags(view)[1]
    spec = view.one("Deployment")["spec"]
    if component == "single-pod":
        assert spec["replicas"] == 1 and "--store" not in flags
    else:
        assert "replicas" not in spec and flags["--store"]
        view.one("HorizontalPodAutoscaler")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_pod_is_ready_only_once_it_caught_up_with_the_fleet(rendered, overlay):
    # The sidecar's readiness asks the health service that turns SERVING once this replica
    # installed or built what the fleet serves (always SERVING without a store).
    probe = rendered[overlay].container("tftrt-sidecar")["readinessProbe"]["grpc"]
    assert probe == {"port": 8700, "service": FLEET_HEALTH_SERVICE}
