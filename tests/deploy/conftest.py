"""Rendered k8s/ overlays and small accessors for the deployment tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.rendering import Manifest, render

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
FLEET_OVERLAYS = ("cpu", "gpu", "tf217-tensorrt", "autoscaled")
"""Overlays whose replicas share a fleet store on a ReadWriteMany claim."""
SINGLE_POD_OVERLAYS = ("single-pod",)
"""Overlays of one pod on ReadWriteOnce claims, without a store."""
OVERLAYS = FLEET_OVERLAYS + SINGLE_POD_OVERLAYS
GPU_OVERLAYS = ("gpu", "tf217-tensorrt")

KUBERNETES_VERSION = "1.31.0"
"""The Kubernetes release whose schema every manifest must validate against (native
gRPC probes need 1.24+; fsGroupChangePolicy and appProtocol are GA well before)."""


@dataclass(frozen=True)
class Rendered:
    """One overlay rendered, with the pod's parts at hand."""

    overlay: str
    manifests: list[Manifest]

    def one(self, kind: str, name: str | None = None) -> Manifest:
        """The single manifest of ``kind`` (and ``name``)."""
        found = [
            m for m in self.manifests
            if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
        ]
        assert len(found) == 1, f"{self.overlay}: {len(found)} {kind} {name or ''}"
        return found[0]

    def all(self, kind: str) -> list[Manifest]:
        """Every manifest of ``kind``."""
        return [m for m in self.manifests if m["kind"] == kind]

    @property
    def pod(self) -> dict[str, Any]:
        """The Deployment's pod spec."""
        spec: dict[str, Any] = self.one("Deployment")["spec"]["template"]["spec"]
        return spec

    def container(self, name: str) -> dict[str, Any]:
        """A container or init container of the pod, by name."""
        for item in self.pod.get("initContainers", []) + self.pod["containers"]:
            if item["name"] == name:
                return dict(item)
        raise AssertionError(f"{self.overlay}: no container {name}")

    def mounts(self, container: str) -> dict[str, dict[str, Any]]:
        """A container's volume mounts by mount path."""
        return {m["mountPath"]: m for m in self.container(container).get("volumeMounts", [])}

    def volume(self, name: str) -> dict[str, Any]:
        """A pod volume by name."""
        for item in self.pod["volumes"]:
            if item["name"] == name:
                return dict(item)
        raise AssertionError(f"{self.overlay}: no volume {name}")


@pytest.fixture(scope="session")
def rendered() -> dict[str, Rendered]:
    """Every overlay, rendered once."""
    return {name: Rendered(name, render(K8S / "overlays" / name)) for name in OVERLAYS}
