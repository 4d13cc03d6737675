"""Fixtures of the Envoy tests: the TF Serving stand-in (TEST-ONLY: the TF Serving binary
cannot run here), a real shape store, the real recorder and a real Envoy in front."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.envoy.binary import EnvoyBinary
from sidecar.envoy.process import EnvoyProcess
from sidecar.envoy.settings import Address, EnvoySettings
from sidecar.recorder.recorder_server import RecorderServer, serve_recorder
from sidecar.recorder.settings import RecorderSettings
from sidecar.shapes import ShapeStore, ShapeStoreSettings
from tests.recorder.conftest import LoopThread
from tests.support.e2e import free_port
from tests.support.standin_models import predict_log, predict_request, save_affine_model
from tests.support.tfserving_standin import StandinHandle, StandinSettings, start_standin
from tests.support.waiting import wait_until


@dataclass
class Front:
    """Envoy in front of the stand-in, mirroring to the recorder."""

    envoy: EnvoyProcess
    standin: StandinHandle
    recorder: RecorderServer
    store: ShapeStore
    loop: LoopThread

    @property
    def address(self) -> str:
        """Where clients call."""
        return str(self.envoy.settings.listen)

    def wait_recorded(self, count: int, timeout: float = 10.0) -> None:
        """Wait until the recorder is idle and the store holds ``count`` observations of
        model m; fail the test after ``timeout`` seconds."""
        def idle_count() -> int | None:
            return self.recorded() if self.loop.run(self.recorder.wait_recorded(timeout)) \
                else None

        wait_until(idle_count, timeout, f"{count} observations of m recorded",
                   done=lambda seen: seen is not None and seen >= count, interval=0.02)

    def recorded(self) -> int:
        """Observations of model m in the store (every signature)."""
        return sum(count for model, signature in self.store.signatures() if model == "m"
                   for _, count in self.store.shape_set_counts(model, signature))


def recorder_cluster_stats(admin: Address, clusters: Sequence[str]) -> dict[str, int]:
    """``<cluster>.upstream_rq_total``, ``_active`` and ``_pending_active`` of each recorder
    cluster, read from Envoy's admin API at ``admin`` (0 where Envoy has no value yet)."""
    query = urllib.parse.urlencode({"format": "json", "filter": "^cluster\\.shape_recorder"})
    with urllib.request.urlopen(f"http://{admin}/stats?{query}", timeout=5) as answer:
        stats = json.loads(answer.read())["stats"]
    found = {stat["name"].removeprefix("cluster."): int(stat["value"])
             for stat in stats if "value" in stat}
    return {f"{cluster}.{name}": found.get(f"{cluster}.{name}", 0) for cluster in clusters
            for name in ("upstream_rq_total", "upstream_rq_active", "upstream_rq_pending_active")}


def mirrors_in_flight(stats: dict[str, int], clusters: Sequence[str]) -> int:
    """Calls Envoy mirrored to the recorder ``clusters`` and not answered yet, in ``stats``
    (:func:`recorder_cluster_stats`): a mirror is fire and forget, so it may still be on
    its way when the client has its answer."""
    return sum(stats[f"{cluster}.{name}"] for cluster in clusters
               for name in ("upstream_rq_active", "upstream_rq_pending_active"))


def envoy_settings(upstream: str, recorder_port: int, **extra: object) -> EnvoySettings:
    """Settings for a test Envoy on free loopback ports."""
    return EnvoySettings(
        listen=Address("127.0.0.1", free_port()), upstream=Address.parse(upstream, "upstream"),
        recorder=Address("127.0.0.1", recorder_port), admin=Address("127.0.0.1", free_port()),
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    """An event loop on a thread, for the recorder."""
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinHandle]:
    """The stand-in serving the affine model as m, version 1."""
    base = tmp_path_factory.mktemp("served") / "m"
    save_affine_model(base / "1", warmup=[predict_log(predict_request("m", 2))])
    handle = start_standin(StandinSettings(model_name="m", model_base_path=base))
    yield handle
    handle.stop(0)


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, standin: StandinHandle,
          loop_thread: LoopThread) -> Iterator[Front]:
    """Envoy (mirroring every call) in front of the stand-in, the recorder behind it."""
    root = tmp_path_factory.mktemp("front")
    with ShapeStore(root / "state", ShapeStoreSettings(), time.time) as store:
        recorder = loop_thread.run(serve_recorder(
            RecorderSettings(listen=Address("127.0.0.1", 0), sample_rate=1.0), store))
        envoy = EnvoyProcess(envoy_settings(standin.address, recorder.port),
                             EnvoyBinary.locate(), root / "envoy",
                             restart_delays=(0.1, 1.0))
        envoy.start()
        try:
            yield Front(envoy, standin, recorder, store, loop_thread)
        finally:
            envoy.stop()
            loop_thread.run(recorder.stop(1))


def binary_path() -> Path:
    """The checked Envoy binary's path."""
    return EnvoyBinary.locate().path
