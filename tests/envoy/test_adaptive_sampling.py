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

from sidecar.config import Address
from sidecar.envoy.binary import EnvoyBinary
from sidecar.envoy.bootstrap import RECORDER_CLUSTER
from sidecar.envoy.governor import MirrorGovernor, share_for
from sidecar.envoy.process import EnvoyProcess
from sidecar.envoy.runtime import EnvoyAdmin, MirrorShare
from sidecar.recorder.recorder_server import serve_recorder
from sidecar.recorder.recording import SHARE_REFRESH_SECONDS
from sidecar.recorder.settings import RecorderSettings
from sidecar.shapes import ShapeSet, ShapeStore, ShapeStoreSettings, TensorSpec
from tests.envoy.conftest import envoy_settings, mirrors_in_flight, recorder_cluster_stats
from tests.recorder.conftest import LoopThread
from tests.support.e2e import free_port
from tests.support.standin_models import predict_request
from tests.support.tfserving_standin import StandinHandle
from tests.support.waiting import wait_until

SAMPLED = 60
"""Sampled calls the count is checked on: enough that the sampling noise stays well within
the tolerance (about 13 %), whatever the machine's speed."""


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
            RecorderSettings(listen=Address("127.0.0.1", recorder_port), record_interval_seconds=0),
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
            time.sleep(1.0)  # on purpose: the governor measures a rate over this second
            governor.adjust()  # far more than 20 calls/s: the share goes down
            assert governor.share < 0.5
            assert admin.mirror_fraction() == pytest.approx(governor.share)
            # A settle time, on purpose: the recorder applies a new share within
            # SHARE_REFRESH_SECONDS, and nothing outside it tells when it did.
            time.sleep(2 * SHARE_REFRESH_SECONDS)
            counted_before = _counted(store)
            weighted_before, sent_before = recorder.stats.requests_by_model["m"], sent[0]
            weight = max(1, round(1 / governor.share))
            wait_until(lambda: (recorder.stats.requests_by_model["m"] - weighted_before)
                       // weight, 60, f"{SAMPLED} sampled calls recorded",
                       done=lambda recorded: recorded >= SAMPLED)
        finally:
            stop.set()
            worker.join()
        wait_until(lambda: mirrors_in_flight(
            recorder_cluster_stats(settings.admin, [RECORDER_CLUSTER]), [RECORDER_CLUSTER]),
            10, "Envoy's mirrored calls in flight answered", done=lambda left: left == 0)
        assert loop_thread.run(recorder.wait_recorded(10))
        counted, calls = _counted(store) - counted_before, sent[0] - sent_before
        assert recorder.stats.requests_by_model["m"] > 0
        # Each recorded call counts 1/share: the estimate is the traffic, within sampling
        # noise (SAMPLED calls recorded) and the weight's rounding.
        assert 0.5 * calls <= counted <= 1.6 * calls, (counted, calls, governor.share)
        loop_thread.run(recorder.stop(1))
    envoy.stop()


def _counted(store: ShapeStore) -> int:
    counts = dict(store.shape_set_counts("m", "serving_default"))
    return counts.get(ShapeSet.of({"x": TensorSpec("DT_FLOAT", (4, 4))}), 0)
