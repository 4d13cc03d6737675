"""``tftrt-sidecar demo``: land a small model in a local folder and watch the sidecar publish it.

Each run lands the demo model under the next free version number in
``<workdir>/incoming/demo/``, runs the sidecar once (``--once``) and prints
every state it went through with timings, what was published and where, the
engines installed, and TF Serving's model config. It ends by serving one request from
the published version the way TF Serving loads it (the TF1 Session loader): the version's
warmup file replayed first, as TF Serving does before it serves a version, then the file's
first request, each timed, so no TF Serving binary is needed to see the promise kept.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from sidecar.config import Settings, load_settings
from sidecar.tfserving import numbering
from sidecar.tfserving.layout import published_versions
from sidecar.watch import list_version_dirs

DEMO_MODEL = "demo"
"""The demo model's name (its directory under incoming/ and serving/)."""


def demo_settings(workdir: Path) -> Settings:
    """The sidecar's settings for a demo folder: everything under ``workdir``, run once."""
    return load_settings(
        {
            "incoming": str(workdir / "incoming"),
            "serving": str(workdir / "serving"),
            "state": str(workdir / "state"),
            "engine_cache": str(workdir / "engine-cache"),
            "model_config_file": str(workdir / "models.config"),
            "settle_seconds": 0,
            "rescan_interval_seconds": 0.2,
            "once": True,
        },
        environ={},
    )


def land_demo_version(workdir: Path) -> int:
    """Build the demo model and move it into incoming under the next free version; return it.

    It is written elsewhere first and renamed in, so it lands complete at once.
    """
    from converter import build_demo_model

    incoming, serving = workdir / "incoming", workdir / "serving"
    used = [v for model, v, _ in list_version_dirs(incoming) if model == DEMO_MODEL]
    used += [numbering.incoming_version(v) for v in published_versions(serving / DEMO_MODEL)]
    version = max(used, default=0) + 1
    landing = workdir / ".landing"
    shutil.rmtree(landing, ignore_errors=True)
    build_demo_model(landing / str(version))
    (incoming / DEMO_MODEL).mkdir(parents=True, exist_ok=True)
    os.rename(landing / str(version), incoming / DEMO_MODEL / str(version))
    landing.rmdir()
    return version


def run_demo(workdir: Path) -> int:
    """Land a demo version, run the sidecar once over ``workdir`` and print what happened."""
    from sidecar.service.loop import SidecarService
    from sidecar.service.wiring import build_parts

    workdir = workdir.absolute()
    settings = demo_settings(workdir)
    print(f"demo folder: {workdir}")
    version = land_demo_version(workdir)
    landed_at = time.time()  # the journal's clock
    print(f"landed a Keras MLP as {settings.paths.incoming_base / DEMO_MODEL / str(version)}")
    print("running: tftrt-sidecar run --once (settle 0 s: the version was renamed in whole)")
    with SidecarService(settings, build_parts(settings)) as service:
        summary = service.run()
        print()
        for result in summary.results:
            print(f"{result.model} {numbering.describe(result.version)}: "
                  f"{result.state.value}")
            for step in service.journal.history(result.model, result.version):
                seconds = result.stage_seconds.get(step.to_state)
                took = f"{seconds:7.2f} s" if seconds is not None else " " * 9
                reason = f"  ({step.reason})" if step.reason else ""
                print(f"  -> {step.to_state.value:<11}{took}{reason}")
            if result.replay_origin is not None:
                print(f"  replayed {result.replay_inputs} input(s) from "
                      f"{result.replay_origin.value}; warmup file: {result.warmup_records} "
                      "record(s)")
            if result.flavour is not None:
                why = f" because {result.flavour_reason}" if result.flavour_reason else ""
                print(f"  published the {result.flavour.value} model{why}")
                print(f"  at {result.published_path}")
                job = service.journal.get(result.model, result.version)
                if job is not None and result.published_path is not None:
                    print(f"  served {job.updated_at - landed_at:.1f} s after landing")
            elif result.reason:
                print(f"  reason: {result.reason}")
            if result.verification is not None:
                print(f"  verified in a TF1 Session: {result.verification.describe()}")
            if result.engines is not None:
                print(f"  engines: {result.engines_kept} kept, {result.engines.installed} "
                      f"file(s) installed in {result.engines.directory}")
                print(f"  serve with TF_XLA_FLAGS='{result.engines.xla_flags()}'")
    for model, old in summary.retired:
        print(f"{model}/{old}: retired by retention")
    print()
    print(f"TF Serving's model config ({settings.paths.model_config_file}):")
    print(settings.paths.model_config_file.read_text(encoding="utf-8").rstrip())
    print()
    published = [r.published_path for r in summary.results if r.published_path is not None]
    if published:
        print()
        serve_one_request(published[-1])
    print()
    print(f"serve it with TF Serving: tensorflow_model_server "
          f"--model_config_file={settings.paths.model_config_file} "
          "--xla_cpu_compilation_enabled=true")
    return 0 if summary.results and not summary.failed else 1


def serve_one_request(version_dir: Path) -> None:
    """Load ``version_dir`` as TF Serving does, replay its warmup file as TF Serving does
    before it marks the version AVAILABLE, then answer the file's first request."""
    import tensorflow as tf

    from converter import ServingSession
    from sidecar.tfserving.warmup import read_predict_requests

    requests = read_predict_requests(version_dir)
    request = requests[0]
    key = request.model_spec.signature_name or "serving_default"
    feed = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    with ServingSession.load(version_dir) as served:
        # TF Serving runs each record once (num_request_iterations defaults to 1); the
        # first run of a fresh Session pays for its setup, which is what warmup absorbs.
        start = time.perf_counter()
        served.replay_predict_requests(requests[:1])
        first = time.perf_counter() - start
        served.replay_predict_requests(requests[1:])
        warmup = time.perf_counter() - start
        start = time.perf_counter()
        outputs = served.run(key, feed)
        took = time.perf_counter() - start
    shapes = ", ".join(f"{name} {list(value.shape)}" for name, value in feed.items())
    print(f"one request served from {version_dir} in a TF1 Session, as TF Serving loads it:")
    print(f"  warmup, as TF Serving replays it before the version is AVAILABLE: "
          f"{len(requests)} record(s) in {warmup * 1000:.1f} ms (the first {first * 1000:.1f} ms)")
    print(f"  then {key}({shapes}) answered in {took * 1000:.1f} ms: the first client request "
          "does not pay for the first calls:")
    for name, value in outputs.items():
        print(f"  {name}: shape {list(value.shape)}, first values "
              f"{[round(float(v), 4) for v in value.ravel()[:4]]}")
