"""The recorder in its own process (`RecorderProcess`), as `tftrt-sidecar run` starts it:
real child processes, real sockets, the real shape store and the real metrics objects.
Calls reach it here as Envoy mirrors them: the request bytes of a PredictionService call."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry

from sidecar.config import Address
from sidecar.metrics import TapMetrics
from sidecar.recorder.child import ShippingObserver, apply_events
from sidecar.recorder.errors import TapStartError
from sidecar.recorder.process import RecorderProcess
from sidecar.recorder.settings import RecorderSettings
from sidecar.recorder.stats import TapStats
from sidecar.shapes import ShapeStore, ShapeStoreSettings
from tests.recorder.conftest import mirror
from tests.support.e2e import free_port
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


def test_child_records_and_feeds_the_parents_metrics(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    recorder = RecorderProcess(RecorderSettings(listen=Address("127.0.0.1", 0)), tmp_path,
                               observer=TapMetrics(registry, None))
    recorder.start()
    try:
        assert recorder.pid != os.getpid() and recorder.serving
        assert mirror(recorder.port, 3) == b""

        def recorded() -> float | None:
            return registry.get_sample_value(
                "tftrt_sidecar_tap_requests_total", {"model": "m", "prebuilt": "false"})

        wait_until(recorded, 20, "the call recorded", done=lambda n: n == 1.0, interval=0.1)
        with (grpc.insecure_channel(f"127.0.0.1:{recorder.port}") as channel,
              pytest.raises(grpc.RpcError) as unknown):
            channel.unary_unary("/tensorflow.serving.ModelService/"
                                "HandleReloadConfigRequest")(b"", timeout=10)
        assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        recorder.stop()
    assert not recorder.serving
    with ShapeStore(tmp_path, ShapeStoreSettings(), time.time) as store:  # the child's writes
        assert [count for _, count in store.shape_set_counts("m", "serving_default")] == [1]


def test_a_killed_child_is_restarted_and_serves_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    recorder = RecorderProcess(RecorderSettings(listen=Address("127.0.0.1", port)), tmp_path,
                               restart_delays=(0.1, 1.0))
    recorder.start()
    try:
        first = recorder.pid
        assert first is not None
        mirror(port, 1)
        with caplog.at_level(logging.ERROR, logger="sidecar"):
            os.kill(first, signal.SIGKILL)
            wait_until(lambda: recorder.restarts == 1 and recorder.serving, 60,
                       "the recorder restarted once and serving", interval=0.1)
        assert f"exited with code -{signal.SIGKILL.value}" in caplog.text
        assert recorder.pid != first
        assert mirror(port, 2) == b""
    finally:
        recorder.stop()


def test_a_taken_port_fails_the_start(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        recorder = RecorderProcess(RecorderSettings(listen=Address("127.0.0.1", taken)), tmp_path)
        with pytest.raises(TapStartError, match=f"127.0.0.1:{taken}"):
            recorder.start()
    assert not recorder.serving


def test_the_child_does_not_outlive_its_parent(tmp_path: Path) -> None:
    parent_code = textwrap.dedent(f"""
        import pathlib, sys, time
        from sidecar.config import Address
        from sidecar.recorder.settings import RecorderSettings
        from sidecar.recorder.process import RecorderProcess
        if __name__ == "__main__":
            recorder = RecorderProcess(RecorderSettings(listen=Address("127.0.0.1", 0)),
                                       pathlib.Path({str(tmp_path)!r}))
            recorder.start()
            print(recorder.pid, flush=True)
            time.sleep(600)  # a parent that lives on until the test kills it
    """)
    script = tmp_path / "parent.py"
    script.write_text(parent_code)
    parent = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait(10)
        wait_until(lambda: not _alive(child), 20, "the orphaned child gone", interval=0.1)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie has exited


def test_every_observer_callback_crosses_the_pipe() -> None:
    # What the child observes reaches the parent as pickled events over a real pipe.
    shipping = ShippingObserver()
    shipping.dropped("Predict")
    shipping.unparsable("Regress")
    shipping.recorder_failed(OSError("disk full"))
    shipping.recording_stopped("rest-shape-recording", RecursionError("too deep"), 0.5)
    shipping.recording_stopped("shape-recording", RuntimeError("share"), 0.5)
    shipping.recording_restarted("shape-recording")
    receiving, sending = multiprocessing.get_context("spawn").Pipe(duplex=False)
    with receiving, sending:
        sending.send(("events", shipping.take()))
        kind, events = receiving.recv()
    stats = TapStats()
    apply_events(events, stats)
    assert kind == "events" and shipping.take() == []
    assert (stats.dropped_records, stats.unparsable_requests, stats.recorder_failures) == (1, 1, 1)
    assert stats.stopped_recordings == {"rest-shape-recording"}
    assert stats.recording_restarts == 1
