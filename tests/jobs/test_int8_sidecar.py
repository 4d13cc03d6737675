"""An INT8 policy through the real sidecar: ``tftrt-sidecar run`` in its own process, with
oneDNN on as the pod starts it, a trained digits CNN landed in its incoming base, the
requests its tap recorded in its shape store, and GetModel over the admin API.

The digits CNN is trained (random weights make top-1 agreement meaningless); the recorded
requests are digits it never trained on, 8 to a request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest

from sidecar.jobs import SessionModel
from sidecar.shapes import ShapeObservation, ShapeSet, ShapeStore, ShapeStoreSettings, TensorSpec
from sidecar.tfserving.warmup import predict_request_from_arrays
from tests.support.builders import land
from tests.support.e2e import free_port
from tests.support.running_sidecar import REPO_ROOT
from tests.support.trained_models import digit_images, digits_cnn, held_out
from tests.support.waiting import wait_until
from tftrt.sidecar.admin.v1 import admin_pb2 as pb
from tftrt.sidecar.admin.v1 import admin_pb2_grpc

RECORDED = 30
"""Requests in the shape store: every 5th (6) is held out, 24 calibrate."""

BATCH = 8


@dataclass(frozen=True)
class Published:
    """What the sidecar published for the INT8 policy, and how it shows it."""

    model: pb.Model
    """GetModel's answer once the version's job ended."""
    report: dict[str, object]
    """The published version's conversion.json."""


def record_requests(state: Path, model: Path) -> None:
    """Keep RECORDED sampled Predict requests in the shape store, as the tap keeps them."""
    with SessionModel.open(model, ["serve"]) as loaded:
        [name] = loaded.signature("serving_default").inputs
    images = held_out(digit_images())
    now = time.time()
    with ShapeStore(state, ShapeStoreSettings(), clock=time.time) as store:
        observations = []
        for i in range(RECORDED):
            feed = {name: images[i * BATCH:(i + 1) * BATCH]}
            shapes = ShapeSet.of({name: TensorSpec("DT_FLOAT", feed[name].shape)})
            request = predict_request_from_arrays("digits", feed)
            observations.append(ShapeObservation("digits", "serving_default", shapes, now,
                                                 sample=request.SerializeToString()))
        store.record(observations)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    root = tmp_path_factory.mktemp("int8-sidecar")
    model = digits_cnn(root / "digits-cnn")
    record_requests(root / "state", model)
    config = root / "sidecar.toml"
    config.write_text('[models.digits]\nprecision = "INT8"\naccuracy = "top1"\n')
    land(model, root / "incoming", "digits", 1)
    admin = f"127.0.0.1:{free_port()}"
    log = root / "sidecar.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sidecar.cli", "run", "--config", str(config),
             "--incoming", str(root / "incoming"), "--serving", str(root / "serving"),
             "--state", str(root / "state"), "--engine-cache", str(root / "engines"),
             "--model-config-file", str(root / "serving" / "models.config"),
             "--settle-seconds", "0.3", "--rescan-interval-seconds", "0.2",
             "--admin-listen", admin],
            cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"})  # as the pod starts it
    try:
        with grpc.insecure_channel(admin) as channel:
            stub = admin_pb2_grpc.SidecarAdminStub(channel)
            answer: list[pb.Model] = []

            def finished() -> bool:
                assert process.poll() is None, log.read_text()[-5000:]
                try:
                    found = stub.GetModel(pb.GetModelRequest(name="digits"), timeout=10)
                except grpc.RpcError:
                    return False
                answer[:] = [found]
                return bool(found.versions) and found.versions[0].state in (
                    "published", "failed", "skipped")

            wait_until(finished, 600, "the INT8 version's job")
        # The original is served first as 1000; the INT8 build takes over as 1001.
        version_dir = root / "serving" / "digits" / "1001"
        report = json.loads((version_dir / "assets.extra/tftrt/conversion.json").read_text())
        yield Published(answer[0], report)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0, log.read_text()[-5000:]


def test_the_int8_version_is_published_calibrated_on_recorded_requests(
    published: Published,
) -> None:
    model = published.model
    assert (model.policy.precision, model.policy.accuracy) == ("INT8", "top1")
    [version, original] = model.versions
    assert version.state == "published", version.reason
    assert (version.version, version.takes_over_from, version.converted_as) == (1001, 1000, 0)
    assert (original.version, original.flavour, original.converted_as) == (1000, "original",
                                                                            1001)
    assert original.state == "published" and original.in_serving  # the rollback target
    assert version.flavour in ("converted", "original"), version.flavour_reason
    # INT8 was calibrated and measured beside the float candidates; the precision shown is
    # that of the candidate that won (the fastest that was accurate).
    choice = published.report["choice"]
    assert isinstance(choice, dict)
    precisions = {c["name"]: c["precision"] for c in choice["candidates"]}
    assert "INT8" in precisions.values(), choice["candidates"]
    assert version.precision == precisions[choice["chosen"]] == precisions[version.candidate]
    assert "INT8 calibrated on 24 recorded request(s), 6 held out" in version.precision_reason
    assert version.precision_reason.endswith(
        f"candidate {version.candidate!r} measured fastest and accurate, computing in "
        f"{version.precision}")


def test_its_accuracy_is_top1_agreement_on_the_held_out_requests(
    published: Published,
) -> None:
    version = published.model.versions[0]
    accuracy = version.accuracy
    assert version.HasField("accuracy")
    assert accuracy.compared_on == "held-out samples and replay inputs"
    # Every held-out request, then the replay inputs (one per shape set first).
    assert accuracy.compared > RECORDED // 5
    assert accuracy.top1_rows >= RECORDED // 5 * BATCH
    assert accuracy.HasField("top1_agreement") and accuracy.top1_agreement >= 0.99
    assert accuracy.min_top1_agreement == 0.99
    # Logits are class scores under accuracy = "top1": no output was held to scaled error.
    assert accuracy.scaled_error == 0.0
    assert np.isfinite(accuracy.max_scaled_error)
