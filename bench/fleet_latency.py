"""The fleet benchmark's serving phase (``bench/fleet.py``): does a late joiner answer at
the fleet's steady-state latency from its first request, without converting?

Two fleet replicas as the fleet tests run them (``tests.fleet.replicas``: real
``tftrt-sidecar run`` processes, each with its tap, real Envoy, in front of its own TF
Serving stand-in, TEST-ONLY: the TF Serving binary cannot run here; the stand-in loads
the published SavedModel in TensorFlow and replays its warmup file before a version is
AVAILABLE, as TF Serving does). The builder converts and serves; its first call is timed
(as a baseline: a first call also opens Envoy's connections to TF Serving and the
recorder), and after it has answered :data:`WARM_CALLS` calls (its steady state), the late
joiner starts, installs, and becomes ready and AVAILABLE. Then, over already-connected
channels, the late joiner's first :data:`FIRST_CALLS` calls are timed, and after them
:data:`CALLS` calls to each, interleaved, so both are measured under the same load.
Every call is the first request of the published version's own warmup file (the shape
the build was made for).

The script imports this module by name: bench/ is the script's directory, so first on
``sys.path``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Final

import grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from sidecar.tfserving.warmup import read_predict_requests
from tests.fleet.replicas import MODEL, replica
from tests.support.builders import land
from tests.support.waiting import wait_until

WARM_CALLS: Final = 20
"""Calls the builder answers before anything is timed."""

FIRST_CALLS: Final = 10
"""The late joiner's first calls, timed one by one."""

CALLS: Final = 50
"""Calls to each replica, interleaved, for the medians."""


def serving_latency(root: Path, source: Path, served: int) -> dict[str, Any]:
    """Milliseconds per Predict call through the builder's and the late joiner's taps, to
    ``served``, TF Serving's number for ``source`` landed as incoming version 1."""
    incoming, store = root / "incoming", root / "store"
    incoming.mkdir(parents=True)
    land(source, incoming, MODEL, 1)
    with replica(root, "builder", incoming=incoming, store=store) as builder:
        builder.wait_published(served, timeout=1800)
        builder.sidecar.standin.wait_for_state(MODEL, served, "AVAILABLE", 600)
        request = read_predict_requests(builder.published(served))[0]
        with grpc.insecure_channel(builder.sidecar.tap) as to_builder:
            builder_call = _timed_caller(to_builder, request)
            builder_first = builder_call()
            for _ in range(WARM_CALLS - 1):
                builder_call()
            with replica(root, "late", incoming=incoming, store=store) as late:
                wait_until(lambda: late.sidecar.health("tftrt.sidecar.Fleet") == "SERVING",
                           600, "the late joiner ready")
                late.sidecar.standin.wait_for_state(MODEL, served, "AVAILABLE", 600)
                with grpc.insecure_channel(late.sidecar.tap) as to_late:
                    late_call = _timed_caller(to_late, request)
                    first = [late_call() for _ in range(FIRST_CALLS)]
                    pairs = [(builder_call(), late_call()) for _ in range(CALLS)]
                job = late.job(served)
    steady = statistics.median(b for b, _ in pairs)
    return {
        "builder_first_ms": builder_first,
        "builder_p50_ms": steady,
        "late_p50_ms": statistics.median(lt for _, lt in pairs),
        "late_first_ms": first,
        "late_installed": bool(job and job.installed),
        "request_shapes": {name: [d.size for d in tensor.tensor_shape.dim]
                           for name, tensor in request.inputs.items()},
    }


def _timed_caller(channel: grpc.Channel, request: Any) -> Any:
    """A function that makes one Predict call of ``request`` and returns its milliseconds
    (``channel`` is connected first: the calls time Envoy and TF Serving, not the client)."""
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def call() -> float:
        started = time.perf_counter()
        stub.Predict(request, timeout=60)
        return (time.perf_counter() - started) * 1000

    return call
