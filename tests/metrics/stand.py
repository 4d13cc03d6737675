"""A sidecar's real parts wired to SidecarMetrics, for the metrics tests and the Prometheus
end-to-end test: journal, serving base, shape store, engine cache, a real version job, the
tap in front of the TF Serving stand-in, and the /metrics HTTP endpoint."""

from __future__ import annotations

import dataclasses
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from converter import ConversionParams
from sidecar.config import ModelPolicy
from sidecar.envoy.binary import EnvoyBinary
from sidecar.envoy.process import EnvoyProcess
from sidecar.envoy.settings import Address, EnvoySettings
from sidecar.jobs import JobDependencies, JobResult, default_converter_factory, run_version_job
from sidecar.metrics import BuildInfo, MetricsServer, ScrapeSources, SidecarMetrics
from sidecar.publish import VersionPublisher
from sidecar.publish.published import PublishedModels
from sidecar.recorder.recorder_server import serve_recorder
from sidecar.recorder.settings import RecorderSettings
from sidecar.shapes import ShapeStore, ShapeStoreSettings
from sidecar.state import JobJournal
from sidecar.tfserving import numbering
from tests.recorder.conftest import LoopThread
from tests.support.e2e import free_port
from tests.support.tfserving_standin import StandinSettings, start_standin
from tests.support.waiting import wait_until

ENGINE_CACHE_FILE_BYTES = 12345


@dataclass
class MetricsStand:
    """Real state on temporary directories, with metrics on their own registry, served."""

    root: Path
    journal: JobJournal
    publisher: VersionPublisher
    shapes: ShapeStore
    published: PublishedModels
    registry: CollectorRegistry
    metrics: SidecarMetrics
    server: MetricsServer
    envoy: EnvoyProcess
    """Envoy in front of the TF Serving stand-in, which the traffic helpers start on
    ``upstream_port``, mirroring to the recorder they start on ``recorder_port``."""

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def engine_cache(self) -> Path:
        return self.root / "engine-cache"

    @property
    def upstream_port(self) -> int:
        return self.envoy.settings.upstream.port

    @property
    def recorder_port(self) -> int:
        return self.envoy.settings.recorder.port

    @property
    def proxy_stats(self) -> str:
        """Envoy's stats listener, ``host:port``."""
        return str(self.envoy.settings.stats_listen)

    def close(self) -> None:
        self.envoy.stop()
        self.server.stop()
        self.shapes.close()
        self.journal.close()


def open_metrics_stand(root: Path) -> MetricsStand:
    """Build the parts and start /metrics on a free 127.0.0.1 port."""
    journal = JobJournal.open(root / "state", clock=time.time)
    shapes = ShapeStore(root / "state", ShapeStoreSettings(), time.time)
    published = PublishedModels(root / "serving", refresh_seconds=0.0)
    # Another namespace's engines, of a known size: the cache gauge sums every namespace.
    other = root / "engine-cache" / "tf-2.17.0" / "gpu-test"
    other.mkdir(parents=True)
    (other / "engine.bin").write_bytes(b"\0" * ENGINE_CACHE_FILE_BYTES)
    registry = CollectorRegistry()
    metrics = SidecarMetrics(
        registry, BuildInfo.detect(backend="auto"),
        ScrapeSources(journal=journal, published=published,
                      engine_cache_dir=root / "engine-cache", shape_store=shapes),
    )
    server = MetricsServer(Address("127.0.0.1", 0), registry)
    server.start()
    envoy = EnvoyProcess(EnvoySettings(
        listen=_loopback(), upstream=_loopback(), recorder=_loopback(), admin=_loopback(),
        stats_listen=_loopback()), EnvoyBinary.locate(), root / "envoy")
    envoy.start()
    return MetricsStand(root, journal, VersionPublisher(root / "serving"), shapes, published,
                        registry, metrics, server, envoy)


def _loopback() -> Address:
    return Address("127.0.0.1", free_port())


def _keeping_every_engine(
    source: Path, tags: Sequence[str], key: str, params: ConversionParams
) -> object:
    # On this CPU XLA rarely beats native on a small MLP; keeping the engines anyway gives the
    # published version prebuilt shapes, as a GPU build would.
    return default_converter_factory(source, tags, key,
                                     dataclasses.replace(params, keep_slower_engines=True))


def run_converted_job(stand: MetricsStand, model_source: Path, model: str, incoming: int
                      ) -> JobResult:
    """Land ``model_source`` as INCOMING version ``incoming`` and run the real version job of
    its first build (served as ``numbering.served_version(incoming)``) with the metrics
    observer."""
    import shutil

    shutil.copytree(model_source, stand.incoming / model / str(incoming))
    version = numbering.served_version(incoming)
    stand.journal.discover(model, version)
    deps = JobDependencies(
        journal=stand.journal, publisher=stand.publisher, incoming_base=stand.incoming,
        engine_cache_dir=stand.engine_cache, shape_source=stand.shapes,
        observer=stand.metrics.job_observer,
        converter_factory=_keeping_every_engine,  # type: ignore[arg-type]
    )
    return run_version_job(deps, model, version, ModelPolicy(default_batch_sizes=(1, 8),
                                                              serve_original_first=False))


def send_tap_traffic(stand: MetricsStand, loop: LoopThread, model: str, served: int,
                     batches: Sequence[int], features: int = 16) -> int:
    """Serve the serving base with the TF Serving stand-in, wait until it serves SERVED
    version ``served``, start the real recorder with the metrics observer behind the stand's
    Envoy, send one Predict per batch size through Envoy; return how many succeeded, once
    the recorder has recorded them all."""
    standin = start_standin(StandinSettings(model_name=model, port=stand.upstream_port,
                                            model_base_path=stand.root / "serving" / model))
    try:
        standin.wait_for_state(model, served, "AVAILABLE", 60)
        settings = RecorderSettings(listen=Address("127.0.0.1", stand.recorder_port),
                                    record_interval_seconds=0.0)
        recorder = loop.run(serve_recorder(settings, stand.shapes,
                                           observer=stand.metrics.tap_observer))
        ok = 0
        try:
            with grpc.insecure_channel(str(stand.envoy.settings.listen)) as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                for batch in batches:
                    request = predict_pb2.PredictRequest()
                    request.model_spec.name = model
                    values: np.ndarray = np.ones((batch, features), np.float32)
                    request.inputs["x"].CopyFrom(tf.make_tensor_proto(values))
                    stub.Predict(request, timeout=30)
                    ok += 1
            wait_until(lambda: recorder.stats.requests_by_model[model], 10,  # mirrored later
                       f"Envoy's {ok} mirrored calls recorded", done=lambda seen: seen >= ok,
                       interval=0.02)
        finally:
            loop.run(recorder.stop(1))
        return ok
    finally:
        standin.stop(0)


def send_calls_clients_give_up_on(stand: MetricsStand, model: str) -> None:
    """Through the stand's Envoy, in front of a TF Serving stand-in that takes a second per
    call: one Predict whose client deadline (0.2 s) passes, and one
    HandleReloadConfigRequest, which Envoy refuses."""
    standin = start_standin(StandinSettings(model_name=model, request_delay_seconds=1.0,
                                            port=stand.upstream_port,
                                            model_base_path=stand.root / "serving" / model))
    try:
        with grpc.insecure_channel(str(stand.envoy.settings.listen)) as channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            try:
                stub.Predict(request, timeout=0.2)
            except grpc.RpcError as expired:
                assert expired.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            try:
                models.HandleReloadConfigRequest(
                    model_management_pb2.ReloadConfigRequest(), timeout=10)
            except grpc.RpcError as refused:
                assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        standin.stop(0)


def scrape(port: int) -> dict[str, list[Sample]]:
    """GET the sidecar's /metrics and parse it; samples by sample name."""
    return _parsed(f"http://127.0.0.1:{port}/metrics")


def scrape_proxy(address: str) -> dict[str, list[Sample]]:
    """GET Envoy's Prometheus stats from its stats listener and parse them."""
    return _parsed(f"http://{address}/stats/prometheus")


def _parsed(url: str) -> dict[str, list[Sample]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``."""
    found = [s.value for s in samples.get(name, [])
             if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {found} in {samples.get(name)}"
    return float(found[0])
