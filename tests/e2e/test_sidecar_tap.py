"""`tftrt-sidecar run` with its tap, admin API and metrics: traffic through the tap
reaches TF Serving (the test stand-in) unchanged, its shapes are recorded, the next
version that lands is built and warmed up for those shapes, and the admin API and
/metrics report it all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from sidecar.tfserving.warmup import read_predict_requests
from tests.support.e2e import free_port, predict_mlp
from tests.support.tfserving_standin import StandinSettings, start_standin
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("one_build")  # one build per version


@pytest.mark.timeout(300)
def test_tap_records_shapes_that_the_next_version_is_built_for(
    tmp_path: Path, mlp_model: Path
) -> None:
    incoming, serving = tmp_path / "incoming" / "mlp", tmp_path / "serving"
    (serving / "mlp").mkdir(parents=True)
    shutil.copytree(mlp_model, incoming / "1")
    standin = start_standin(StandinSettings(
        model_name="mlp", model_base_path=serving / "mlp", file_system_poll_wait_seconds=0.2))
    tap = f"127.0.0.1:{free_port()}"
    admin, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "sidecar.cli", "run", "--incoming", str(tmp_path / "incoming"),
         "--serving", str(serving), "--state", str(tmp_path / "state"),
         "--engine-cache", str(tmp_path / "engines"),
         "--model-config-file", str(tmp_path / "models.config"), "--settle-seconds", "0",
         "--rescan-interval-seconds", "0.2", "--tap-listen", tap, "--upstream",
         standin.address, "--admin-listen", admin, "--metrics-listen", metrics,
         "--recorder-listen", f"127.0.0.1:{free_port()}",
         "--envoy-admin-listen", f"127.0.0.1:{free_port()}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until((serving / "mlp" / "1000").exists, 120, "mlp/1000 published")
        standin.wait_for_state("mlp", 1000, "AVAILABLE", 60)
        direct = predict_mlp(standin.address, 3)
        for _ in range(5):
            through_tap = predict_mlp(tap, 3)
        assert through_tap.SerializeToString() == direct.SerializeToString()

        def tapped_shapes_recorded() -> bool:  # Envoy mirrors off the hot path, in batches
            shapes = _admin_json(admin, "shapes", "mlp")
            return sum(int(s["total_requests"]) for s in shapes.get("signatures", [])) >= 5

        wait_until(tapped_shapes_recorded, 30, "the tapped requests in the admin API's shapes")
        shutil.copytree(mlp_model, tmp_path / "landing")
        os.rename(tmp_path / "landing", incoming / "2")
        wait_until((serving / "mlp" / "2000").exists, 120, "mlp/2000 published")
        batches = {request.inputs["x"].tensor_shape.dim[0].size
                   for request in read_predict_requests(serving / "mlp" / "2000")}
        assert 3 in batches, f"version 2 was warmed up for batches {batches}, not the tapped 3"
        standin.wait_for_state("mlp", 2000, "AVAILABLE", 60)
        assert predict_mlp(tap, 3).model_spec.version.value == 2000
        with grpc.insecure_channel(admin) as channel:  # the tap's process, seen by health
            check = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="tftrt.sidecar.Tap"), timeout=10)
        assert check.status == health_pb2.HealthCheckResponse.SERVING
        model = _admin_json(admin, "get", "mlp")
        states = {int(v["version"]): v["state"] for v in model["versions"]}
        assert states[2000] == "published", states
        samples = _metrics(metrics)
        conversions = [s.value for s in samples if s.name == "tftrt_sidecar_conversions_total"
                       and s.labels.get("model") == "mlp"]
        assert sum(conversions) == 2
        recorded = [s.value for s in samples if s.name == "tftrt_sidecar_tap_requests_total"
                    and s.labels.get("model") == "mlp"]
        assert sum(recorded) >= 5
    finally:
        sidecar.send_signal(signal.SIGTERM)
        output, _ = sidecar.communicate(timeout=60)
        standin.stop()
    assert sidecar.returncode == 0, output


def _admin_json(admin: str, *command: str) -> dict[str, Any]:
    listing = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "admin", "--address", admin, "--json", *command],
        capture_output=True, text=True, check=True)
    answer: dict[str, Any] = json.loads(listing.stdout)
    return answer


def _metrics(address: str) -> list[Sample]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text)
            for sample in family.samples]

