"""The REST front the REST Envoy tests call: a real Envoy in front of the TF Serving
stand-in's gRPC and REST ports (TEST-ONLY stand-in: the TF Serving binary cannot run here),
each mirrored to its real recorder and shape store, and the HTTP/1.1 call the tests make."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from sidecar.envoy.binary import EnvoyBinary
from sidecar.envoy.bootstrap import RECORDER_CLUSTER, REST_RECORDER_CLUSTER
from sidecar.envoy.process import EnvoyProcess
from sidecar.envoy.settings import Address, EnvoySettings
from sidecar.recorder.recorder_server import RecorderServer, serve_recorder
from sidecar.recorder.rest_recorder import serve_rest_recorder
from sidecar.recorder.settings import RecorderSettings
from sidecar.recorder.signature_dtypes import SignatureDtypes
from sidecar.shapes import ShapeStore, ShapeStoreSettings
from tests.envoy.conftest import envoy_settings, mirrors_in_flight, recorder_cluster_stats
from tests.recorder.conftest import LoopThread
from tests.support.e2e import free_port
from tests.support.standin_models import save_affine_model
from tests.support.standin_rest import RestStandin, start_rest_standin
from tests.support.tfserving_standin import StandinHandle, StandinSettings, start_standin
from tests.support.waiting import wait_until

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.25, 0.0, -1.0], [7.0, 8.0, 9.0, 10.0]]

_RECORDERS = (REST_RECORDER_CLUSTER, RECORDER_CLUSTER)


class _Typed(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float64, name="a"),
                                  tf.TensorSpec([None], tf.int64, name="b")])
    def predict(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"total": tf.reduce_sum(a, axis=1) + tf.cast(b, tf.float64)}


@dataclass
class RestFront:
    """Envoy fronting the stand-in's gRPC and REST ports, each mirrored to its recorder and
    shape store."""

    envoy: EnvoyProcess
    standin: StandinHandle
    rest: RestStandin
    rest_recorder: RecorderServer
    grpc_recorder: RecorderServer
    rest_store: ShapeStore
    grpc_store: ShapeStore
    loop: LoopThread

    @property
    def rest_address(self) -> str:
        """Where REST clients call."""
        return str(self.envoy.settings.rest_listen)

    def settle(self) -> None:
        """Wait until both recorders handled every call Envoy mirrored so far (a mirror
        is fire and forget: it may still be on its way when the client has its answer)."""
        wait_until(self._settled, 10, "both recorders handling every mirrored call",
                   interval=0.02)

    def _settled(self) -> bool:
        stats = recorder_cluster_stats(self.envoy.settings.admin, _RECORDERS)
        if mirrors_in_flight(stats, _RECORDERS):
            return False
        handled = []
        for cluster, recorder in zip(_RECORDERS, (self.rest_recorder, self.grpc_recorder),
                                     strict=True):
            assert self.loop.run(recorder.wait_recorded(10))
            counted = recorder.stats
            handled.append(sum(counted.requests_by_model.values())
                           + counted.unparsable_requests + counted.dropped_records
                           == stats[f"{cluster}.upstream_rq_total"])
        return all(handled)


def stored(store: ShapeStore) -> int:
    """Observations stored in ``store``, every model and signature."""
    return sum(count for model, signature in store.signatures()
               for _, count in store.shape_set_counts(model, signature))


def rest_settings(grpc_upstream: str, rest_upstream: str, recorder: int, rest_recorder: int,
                  **extra: object) -> EnvoySettings:
    """Envoy settings with both fronts on free loopback ports."""
    return envoy_settings(grpc_upstream, recorder, rest_listen=Address("127.0.0.1", free_port()),
                          rest_upstream=Address.parse(rest_upstream, "rest_upstream"),
                          rest_recorder=Address("127.0.0.1", rest_recorder), **extra)


def save_serving(base: Path) -> Path:
    """A serving base at ``base``: the affine model as m, a float64/int64 model as typed."""
    save_affine_model(base / "m" / "1")
    module = _Typed()
    tf.saved_model.save(module, str(base / "typed" / "1"),
                        signatures={"serving_default": module.predict})
    return base


@contextmanager
def serving_stand_ins(serving: Path, config_dir: Path
                      ) -> Iterator[tuple[StandinHandle, RestStandin]]:
    """The gRPC stand-in serving both models of ``serving``, and its REST port."""
    config = config_dir / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: "{name}" base_path: "{serving / name}" model_platform: '
        '"tensorflow" version_labels { key: "stable" value: 1 } }\n'
        for name in ("m", "typed")) + "}\n")
    handle = start_standin(StandinSettings(model_config_file=config,
                                           file_system_poll_wait_seconds=0))
    rest = start_rest_standin(handle.registry)
    yield handle, rest
    rest.stop()
    handle.stop(0)


@contextmanager
def running_rest_front(root: Path, serving: Path, stand_ins: tuple[StandinHandle, RestStandin],
                       loop_thread: LoopThread) -> Iterator[RestFront]:
    """Envoy (mirroring every call) in front of both stand-in ports, both recorders behind,
    their stores and Envoy's files under ``root``."""
    standin, rest = stand_ins
    recording = RecorderSettings(listen=Address("127.0.0.1", 0), sample_rate=1.0,
                                 record_interval_seconds=0.01)
    with ShapeStore(root / "rest", ShapeStoreSettings(), time.time) as rest_store, \
            ShapeStore(root / "grpc", ShapeStoreSettings(), time.time) as grpc_store:
        rest_recorder = loop_thread.run(serve_rest_recorder(
            recording, rest_store, SignatureDtypes(serving)))
        grpc_recorder = loop_thread.run(serve_recorder(recording, grpc_store))
        settings = rest_settings(standin.address, rest.address, grpc_recorder.port,
                                 rest_recorder.port)
        envoy = EnvoyProcess(settings, EnvoyBinary.locate(), root / "envoy")
        envoy.start()
        try:
            yield RestFront(envoy, standin, rest, rest_recorder, grpc_recorder, rest_store,
                            grpc_store, loop_thread)
        finally:
            envoy.stop()
            loop_thread.run(rest_recorder.stop(1))
            loop_thread.run(grpc_recorder.stop(1))


def call(address: str, method: str, path: str, body: object = None,
         raw: bytes | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """One HTTP/1.1 request: status, headers (lower-case names, Date left out), body."""
    parsed = Address.parse(address, "address")
    connection = http.client.HTTPConnection(parsed.host, parsed.port, timeout=10)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    connection.request(method, path, body=data,
                       headers={"content-type": "application/json"} if data else {})
    answer = connection.getresponse()
    headers = [(name.lower(), value) for name, value in answer.getheaders()
               if name.lower() != "date"]
    content = answer.read()
    connection.close()
    return answer.status, headers, content
