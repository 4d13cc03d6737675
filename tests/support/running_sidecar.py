"""Test-only: ``tftrt-sidecar run`` as a real process with its tap, admin API and metrics in
front of the TF Serving stand-in, steady client traffic through the tap, and waits on what
the sidecar reports (admin health, /metrics, files)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.support.e2e import free_port
from tests.support.standin_rest import start_rest_standin
from tests.support.tfserving_standin import StandinHandle, StandinSettings, start_standin
from tests.support.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


class Traffic:
    """Predict calls on ``model`` (x[1,16]) through ``address`` in a loop, on a thread,
    pinned to ``version`` when given; records every failure."""

    def __init__(self, address: str, model: str = "mlp", version: int | None = None) -> None:
        self._address = address
        self._request = predict_pb2.PredictRequest()
        self._request.model_spec.name = model
        if version is not None:
            self._request.model_spec.version.value = version
        self._request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((1, 16), np.float32)))
        self._stop = threading.Event()
        self.served = 0
        """Calls answered."""
        self.failures: list[str] = []
        """Each failed call's status and message."""
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        with grpc.insecure_channel(self._address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not self._stop.is_set():
                try:
                    stub.Predict(self._request, timeout=10)
                    self.served += 1
                except grpc.RpcError as error:
                    self.failures.append(f"{error.code()}: {error.details()}")
                self._stop.wait(0.05)  # a steady trickle, not a load test


class RunningSidecar:
    """A started ``tftrt-sidecar run`` process; see :func:`running_sidecar`."""

    def __init__(self, process: subprocess.Popen[str], standin: StandinHandle, tap: str,
                 rest: str, standin_rest: str, admin: str, metrics: str, proxy_stats: str,
                 log: Path) -> None:
        self.process = process
        self.standin = standin
        self.tap = tap
        """The tap's address: Envoy, where clients call."""
        self.rest = rest
        """Envoy's REST front, before the stand-in's REST API."""
        self.standin_rest = standin_rest
        """The stand-in's own REST API (TF Serving's, called directly)."""
        self.admin = admin
        self.metrics = metrics
        self.proxy_stats = proxy_stats
        """Envoy's stats listener (``/stats/prometheus``)."""
        self.log = log
        """Where the sidecar's output goes."""
        self.expected_exit = 0
        """The exit status the process must end with (a test that kills it says so)."""

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def health(self, service: str) -> str:
        """The admin API's health status of ``service`` ("SERVING", "NOT_SERVING", ...)."""
        with grpc.insecure_channel(self.admin) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=10)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one series on the sidecar's /metrics, or None when it is not there."""
        return _series(f"http://{self.metrics}/metrics", name, labels)

    def proxy_metric(self, name: str, **labels: str) -> float | None:
        """The value of one series of Envoy's stats, or None when it is not there."""
        return _series(f"http://{self.proxy_stats}/stats/prometheus", name, labels)

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.log.read_text()

    def wait_serving(self, version: int, timeout: float) -> None:
        """Wait until the stand-in serves ``version`` of mlp; fail at once, with the
        sidecar's output, if the sidecar died meanwhile."""
        def states() -> dict[int, str]:
            assert self.alive(), self.output()[-5000:]
            return self.standin.version_states("mlp")

        wait_until(states, timeout, f"mlp/{version} AVAILABLE in the stand-in",
                   done=lambda seen: seen.get(version) == "AVAILABLE", interval=0.02)


def _series(url: str, name: str, labels: dict[str, str]) -> float | None:
    """One series of the Prometheus exposition at ``url``."""
    with urllib.request.urlopen(url, timeout=10) as response:
        exposition = response.read().decode()
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in exposition.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match and match[1] == name and ",".join(sorted((match[2] or "").split(
                ","))) == wanted:
            return float(match[3])
    return None


@contextmanager
def running_sidecar(
    root: Path, *, incoming: Path, serving: Path, state: Path, extra: Sequence[str] = (),
    launcher: Sequence[str] = ("-m", "sidecar.cli"),
) -> Iterator[RunningSidecar]:
    """Start the stand-in (serving ``serving/mlp`` over gRPC and REST) and ``python
    <launcher> run`` with a tap (gRPC and REST), admin API and metrics; stop them afterwards
    (SIGTERM; the exit status must be 0)."""
    (serving / "mlp").mkdir(parents=True, exist_ok=True)
    standin = start_standin(StandinSettings(
        model_name="mlp", model_base_path=serving / "mlp", file_system_poll_wait_seconds=0.2))
    rest_standin = start_rest_standin(standin.registry)
    tap, rest, admin, metrics, recorder, rest_recorder, envoy_admin, proxy_stats = (
        f"127.0.0.1:{free_port()}" for _ in range(8))
    log = root / "sidecar.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, *launcher, "run", "--incoming", str(incoming),
             "--serving", str(serving), "--state", str(state),
             "--engine-cache", str(root / "engines"),
             "--model-config-file", str(serving / "models.config"), "--settle-seconds", "0.3",
             "--rescan-interval-seconds", "0.2", "--retry-backoff-seconds", "0.5",
             "--tap-listen", tap, "--upstream", standin.address, "--admin-listen", admin,
             "--metrics-listen", metrics, "--recorder-listen", recorder,
             "--envoy-admin-listen", envoy_admin, "--proxy-stats-listen", proxy_stats,
             "--rest-listen", rest, "--rest-upstream", rest_standin.address,
             "--rest-recorder-listen", rest_recorder, *extra],
            cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
    sidecar = RunningSidecar(process, standin, tap, rest, rest_standin.address, admin, metrics,
                             proxy_stats, log)
    try:
        wait_until(lambda: _answers(sidecar), 120, "the sidecar's admin API and tap")
        yield sidecar
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            rest_standin.stop()
            standin.stop()
    assert process.returncode == sidecar.expected_exit, sidecar.output()[-5000:]


def _answers(sidecar: RunningSidecar) -> bool:
    assert sidecar.alive(), sidecar.output()[-5000:]
    try:
        return sidecar.health("tftrt.sidecar.Tap") == "SERVING"
    except grpc.RpcError:
        return False
