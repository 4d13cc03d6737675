"""Sampling adapts: while traffic stays within the recorder's budget every call is recorded;
above it the sidecar lowers the share Envoy mirrors, and each recorded call then counts for
the calls it stands for, so the shape store's frequencies stay the traffic's."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from sidecar.envoy.binary import EnvoyBinary
from sidecar.envoy.governor import MirrorGovernor, share_for
from sidecar.envoy.process import EnvoyProcess
from sidecar.envoy.runtime import EnvoyAdmin, MirrorShare
from sidecar.shapes import ShapeSet, ShapeStore, ShapeStoreSettings, TensorSpec
from sidecar.tap.recorder_server import serve_recorder
from sidecar.tap.settings import RecorderSettings
from tests.envoy.conftest import envoy_settings
from tests.support.e2e import free_port
from tests.support.standin_models import predict_request
from tests.support.tfserving_standin import StandinHandle
from tests.tap.conftest import LoopThread


def test_the_share_keeps_the_recorder_within_its_budget() -> None:
    assert share_for(50, budget_per_second=100, ceiling=1.0) == 1.0
    assert share_for(1000, budget_per_second=100, ceiling=1.0) == pytest.approx(0.10)
    assert share_for(1000, budget_per_second=100, ceiling=0.05) == pytest.approx(0.05)
    assert share_for(1e9, budget_per_second=100, ceiling=1.0) == pytest.approx(0.01)
    assert share_for(1e9, budget_per_second=0, ceiling=0.5) == 0.5  # 0: no adapting
    assert share_for(300, budget_per_second=100, ceiling=1.0) == pytest.approx(0.33)
    # Large requests: the byte budget is the tighter one (57 calls/s of 600 KB each).
    assert share_for(57, 100, 1.0, bytes_per_second=34e6,
                     byte_budget_per_second=8 << 20) == pytest.approx(0.24)
    assert share_for(57, 100, 1.0, bytes_per_second=34e6, byte_budget_per_second=0) == 1.0


def test_heavy_traffic_lowers_the_share_and_counts_stay_the_traffics(
        standin: StandinHandle, loop_thread: LoopThread, tmp_path: Path) -> None:
    recorder_port = free_port()
    settings = envoy_settings(standin.address, recorder_port)
    envoy = EnvoyProcess(settings, EnvoyBinary.locate(), tmp_path / "envoy")
    envoy.start()
    admin = EnvoyAdmin(settings.admin)
    with ShapeStore(tmp_path / "state", ShapeStoreSettings(), time.time) as store:
        recorder = loop_thread.run(serve_recorder(
            RecorderSettings(listen=f"127.0.0.1:{recorder_port}", record_interval_seconds=0),
            store, share=MirrorShare(settings.admin, settings.mirror_fraction)))
        governor = MirrorGovernor(admin, ceiling=1.0, budget_per_second=20, interval=0.5)
        assert admin.client_traffic() == (0, 0)
        governor.adjust()  # the first measurement
        stop, sent = threading.Event(), [0]

        def traffic() -> None:
            with grpc.insecure_channel(str(settings.listen)) as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                while not stop.is_set():
                    stub.Predict(predict_request("m", batch=4), timeout=10)
                    sent[0] += 1

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            time.sleep(1.0)
            governor.adjust()  # far more than 20 calls/s: the share goes down
            assert governor.share < 0.5
            assert admin.mirror_fraction() == pytest.approx(governor.share)
            time.sleep(1.0)  # the recorder asks for the share every 0.5 s
            counted_before = _counted(store)
            sent_before = sent[0]
            time.sleep(3.0)
        finally:
            stop.set()
            worker.join()
        loop_thread.run(recorder.wait_recorded(10))
        time.sleep(0.5)  # mirrors in flight land
        loop_thread.run(recorder.wait_recorded(10))
        counted, calls = _counted(store) - counted_before, sent[0] - sent_before
        assert recorder.stats.requests_by_model["m"] > 0
        # Each recorded call counts 1/share: the estimate is the traffic, within sampling
        # noise (a few dozen calls recorded) and the weight's rounding.
        assert 0.5 * calls <= counted <= 1.6 * calls, (counted, calls, governor.share)
        loop_thread.run(recorder.stop(1))
    envoy.stop()


def _counted(store: ShapeStore) -> int:
    counts = dict(store.shape_set_counts("m", "serving_default"))
    return counts.get(ShapeSet.of({"x": TensorSpec("DT_FLOAT", (4, 4))}), 0)
