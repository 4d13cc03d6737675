"""Fleet benchmark: a fleet of three replicas plus a late joiner against three
independent sidecars, side by side in one run (issue 15).

    python bench/fleet.py [--models demo mobilenet resnet] [--workdir DIR] [--out FILE]

Every sidecar is a real ``tftrt-sidecar run`` process (no tap, so no Envoy and no TF
Serving: publishing into the serving base is what is measured), with its own serving
base, state and engine cache, ``--settle-seconds 0.3 --rescan-interval-seconds 0.2`` and
an admin API for health. For each model (by default the demo model and MobileNetV2 at
224x224; ``resnet``, ResNet50 at 224x224, is a larger one to ask for):

1. Conversions per version: fleet replicas (the three and the late joiners) whose journal
   has the version published and not installed from the store. Goal: 1.
2. CPU seconds (user + system of each process and the children it waited for, from
   ``wait4``) from launch until all have published and stopped (SIGTERM): (a) three
   sidecars without ``--store``, one after another, each as if on a node of its own (see
   :func:`run_group`), (b) a fleet of three at once, with one store and one incoming base.
   Reported raw, and net of start-up and idle: minus, per process, the CPU of an idle
   sidecar (empty incoming, same flags) over the same wall time. Goal: (b) <= 0.4x (a).
3. A late joiner (a fourth replica started after (b); three, one after another, the
   median): launch until health service ``tftrt.sidecar.Fleet`` is SERVING, less the
   median of the same for three replicas with nothing to do (empty store and incoming),
   against one conversion (the builder's job from leaving DISCOVERED to PUBLISHED, from
   its journal). Reported raw too (ready / one conversion). Goal: <= 0.2x.
4. Recovery: on a fresh store the holder waits inside its build
   (``tests.support.gated_sidecar`` at ``job-building``), a second replica waits for the
   key, the holder's process group is SIGKILLed (a pod dying); the time until the second
   has published. Goal: <= lease (``--lease-seconds`` 5 here) + one conversion. Split
   into the takeover (SIGKILL until the second's job left DISCOVERED) and its conversion.
5. Serving (``bench/fleet_latency.py``, with taps and TF Serving stand-ins): the late
   joiner's first call, the slowest of its next nine, and its median, each against the
   builder's steady-state median (interleaved calls). Goal: the steady state (1x) from
   the first call (which also opens Envoy's upstream connections).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from fleet_latency import serving_latency  # noqa: E402
from fleet_report import figures, print_table, report  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from sidecar.state import Job, JobJournal, JobState  # noqa: E402
from tests.support.builders import land  # noqa: E402
from tests.support.e2e import free_port  # noqa: E402

MODELS = ("demo", "mobilenet")
"""The models measured by default."""
APPLICATIONS = {"mobilenet": "MobileNetV2", "resnet": "ResNet50"}
"""The keras.applications models that can be asked for, by their name here."""
SERVED = 1000
"""TF Serving's number for incoming version 1 (its first build)."""
LEASE_SECONDS = 5.0
REPEATS = 3
"""Late joiners, and idle replicas started, per start-up time (the median is reported)."""
FLAGS = ("--settle-seconds", "0.3", "--rescan-interval-seconds", "0.2")
READY = "tftrt.sidecar.Fleet"
_TICK = os.sysconf("SC_CLK_TCK")


class Sidecar:
    """One started ``tftrt-sidecar run`` process (its own session, so its process group
    is its pod) and its directories."""

    def __init__(self, home: Path, incoming: Path, store: Path | None, name: str,
                 launcher: Sequence[str] = ("-m", "sidecar.cli")) -> None:
        self.home, self.name = home, name
        self.admin = f"127.0.0.1:{free_port()}"
        fleet = [] if store is None else ["--store", str(store), "--replica-id", name,
                                          "--lease-seconds", str(LEASE_SECONDS)]
        home.mkdir(parents=True, exist_ok=True)
        with (home / "sidecar.log").open("w") as log:
            self.launched = time.monotonic()
            self.process = subprocess.Popen(
                [sys.executable, *launcher, "run", "--incoming", str(incoming),
                 "--serving", str(home / "serving"), "--state", str(home / "state"),
                 "--engine-cache", str(home / "engines"),
                 "--model-config-file", str(home / "serving" / "models.config"),
                 "--admin-listen", self.admin, *FLAGS, *fleet],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.cpu_seconds: float | None = None
        """User + system CPU of the process and its waited-for children, once stopped."""
        self.wall_seconds = 0.0
        """Seconds from launch until it was stopped."""

    def check_alive(self) -> None:
        """Raise with the end of its log if the process has ended."""
        if self.process.poll() is not None:
            log = (self.home / "sidecar.log").read_text()[-3000:]
            raise RuntimeError(f"sidecar {self.name} exited ({self.process.returncode}):\n{log}")

    def health(self) -> str | None:
        """The admin API's status of the fleet readiness service; None while not answering."""
        self.check_alive()
        try:
            with grpc.insecure_channel(self.admin) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=READY), timeout=5)
        except grpc.RpcError:
            return None
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def published(self, model: str) -> bool:
        """Whether the version is in this sidecar's serving base."""
        return (self.home / "serving" / model / str(SERVED)).is_dir()

    def job(self, model: str) -> Job | None:
        """Its journal's entry for the version (read beside the running process)."""
        if not (self.home / "state" / "jobs.sqlite3").exists():
            return None
        with JobJournal.open(self.home / "state", clock=lambda: 0.0) as journal:
            return journal.get(model, SERVED)

    def conversion_span(self, model: str) -> tuple[float, float]:
        """When (wall clock, as the journal keeps it) its job left DISCOVERED, and when it
        last changed (PUBLISHED): converting, building, verifying and publishing in between,
        one conversion when this replica built it."""
        with JobJournal.open(self.home / "state", clock=lambda: 0.0) as journal:
            history = journal.history(model, SERVED)
        left = next(t.at for t in history if t.from_state is JobState.DISCOVERED)
        return left, history[-1].at

    def conversion_seconds(self, model: str) -> float:
        """Seconds of :meth:`conversion_span`."""
        left, done = self.conversion_span(model)
        return done - left

    def proc_cpu(self) -> float:
        """CPU seconds so far, from /proc (the process and its waited-for children)."""
        fields = (Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1]
                  .split())
        return sum(int(f) for f in fields[11:15]) / _TICK  # utime stime cutime cstime

    def stop(self) -> float:
        """SIGTERM, wait (SIGKILL after 60 s); its CPU seconds from ``wait4``."""
        self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while True:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.kill()
            time.sleep(0.05)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.wall_seconds = time.monotonic() - self.launched
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        return self.cpu_seconds

    def kill(self) -> None:
        """SIGKILL its whole process group (the pod), if it still runs."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)


@contextmanager
def sidecars() -> Iterator[Callable[..., Sidecar]]:
    """A launcher of sidecars; every one it started is killed on the way out."""
    started: list[Sidecar] = []

    def launch(*args: Any, **kwargs: Any) -> Sidecar:
        started.append(Sidecar(*args, **kwargs))
        return started[-1]

    try:
        yield launch
    finally:
        for sidecar in started:
            sidecar.kill()
            if sidecar.process.returncode is None:
                sidecar.process.wait()


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Poll ``condition`` every 50 ms; the monotonic time it held. Raises after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic()


def build_model(name: str, directory: Path) -> None:
    """Export the benchmark's model ``name`` (runs in a child: this process stays light)."""
    from converter import build_demo_model
    from tests.converter.corpus import keras_application

    if name == "demo":
        build_demo_model(directory)
    else:
        keras_application(directory, APPLICATIONS[name], 224)


def ready_seconds(sidecar: Sidecar) -> float:
    """Seconds from launching ``sidecar`` until it is ready (then it is stopped)."""
    ready = wait_until(lambda: sidecar.health() == "SERVING", 600, f"{sidecar.name} ready")
    sidecar.stop()
    return ready - sidecar.launched


def _all_published(group: list[Sidecar], model: str) -> bool:
    for member in group:
        member.check_alive()
    return all(member.published(model) for member in group)


def _answers(sidecar: Sidecar) -> bool:
    return sidecar.health() is not None


def _ran_for(sidecar: Sidecar, seconds: float) -> bool:
    sidecar.check_alive()
    return time.monotonic() - sidecar.launched >= seconds


def run_group(launch: Callable[..., Sidecar], root: Path, source: Path, model: str,
              fleet: bool) -> tuple[list[Sidecar], float]:
    """Three sidecars that publish the model, then stop; the sidecars and the longest wall
    seconds of one (launch to stopped).

    A fleet's three run at once, on one incoming base and one store. Three independent
    sidecars stand for pods on nodes of their own: each has its own incoming base, and
    they run one after another, so that each converts with the machine's cores to itself,
    as the fleet's builder does. (Run at once on two cores, each conversion costs less CPU
    and more wall time: the converter times its candidates for a fixed wall time.)
    """
    names = ("r1", "r2", "r3")
    if fleet:
        group = _publish(launch, root, root / "store", names, source, model)
    else:
        group = [sidecar for name in names
                 for sidecar in _publish(launch, root / name, None, (name,), source, model)]
    return group, max(sidecar.wall_seconds for sidecar in group)


def _publish(launch: Callable[..., Sidecar], root: Path, store: Path | None,
             names: Sequence[str], source: Path, model: str) -> list[Sidecar]:
    """Sidecars ``names`` on the incoming base ``root/incoming`` (and ``store``): the model
    lands once all answer; all publish, then stop."""
    incoming = root / "incoming"
    incoming.mkdir(parents=True)
    group = [launch(root / name, incoming, store, name) for name in names]
    for member in group:
        wait_until(functools.partial(_answers, member), 180, f"{member.name} answering")
    land(source, incoming, model, 1)
    wait_until(lambda: _all_published(group, model), 1800, f"{names} publishing {model}")
    for member in group:
        member.stop()
    return group


def bench_model(launch: Callable[..., Sidecar], name: str, workdir: Path) -> dict[str, Any]:
    """Every measure of one model but the idle baselines (see :func:`idle_baselines`)."""
    source = workdir / name / "model"
    subprocess.run([sys.executable, __file__, "build", name, str(source)], check=True,
                   cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    alone, alone_wall = run_group(launch, workdir / name / "alone", source, name, fleet=False)
    fleet, fleet_wall = run_group(launch, workdir / name / "fleet", source, name, fleet=True)
    fleet_root = workdir / name / "fleet"
    # Late joiners one after another (start-up varies by a second): each installs.
    joiners, late_seconds = [], []
    for n in range(4, 4 + REPEATS):
        joiners.append(launch(fleet_root / f"r{n}", fleet_root / "incoming",
                              fleet_root / "store", f"r{n}"))
        late_seconds.append(ready_seconds(joiners[-1]))
    members = [*fleet, *joiners]
    jobs = {m.name: m.job(name) for m in members}
    built = [n for n, job in jobs.items()
             if job and job.state is JobState.PUBLISHED and not job.installed]
    if len(built) != 1 or not all(j.published(name) for j in joiners):
        raise RuntimeError(f"{name}: {len(built)} fleet builds ({jobs})")
    builder = next(m for m in members if m.name == built[0])
    builder_job = jobs[builder.name]
    assert builder_job is not None
    return {
        "model": name, "conversions": len(built), "builder": builder.name,
        "one_conversion_s": builder.conversion_seconds(name),
        "builder_job_created_to_published_s": builder_job.updated_at - builder_job.created_at,
        "independent_conversion_s": [m.conversion_seconds(name) for m in alone],
        "alone": {"wall_s": alone_wall, "cpu_s": [m.cpu_seconds for m in alone]},
        "fleet": {"wall_s": fleet_wall, "cpu_s": [m.cpu_seconds for m in fleet]},
        "late_ready_s": statistics.median(late_seconds), "late_ready_each_s": late_seconds,
        "recovery": recovery(launch, workdir / name / "recovery", source, name),
        "serving": serving_latency(workdir / name / "serving", source, SERVED),
    }


def recovery(launch: Callable[..., Sidecar], root: Path, source: Path,
             model: str) -> dict[str, Any]:
    """Seconds from SIGKILL of the holder mid-build until the other replica published."""
    incoming, store, gate = root / "incoming", root / "store", root / "gate"
    incoming.mkdir(parents=True)
    gate.mkdir()
    holder = launch(root / "holder", incoming, store, "holder",
                    launcher=("-m", "tests.support.gated_sidecar", str(gate), "job-building",
                              "1"))
    land(source, incoming, model, 1)
    wait_until((gate / "paused").exists, 1200, "the holder building")
    taker = launch(root / "taker", incoming, store, "taker")
    # The taker has seen the version and waits on the holder's claim.
    wait_until(lambda: taker.health() is not None and taker.job(model) is not None, 180,
               "the taker waiting on the key")
    holder.kill()
    killed, killed_wall = time.monotonic(), time.time()  # the journal's clock is the wall's
    published = wait_until(lambda: _all_published([taker], model), 1800, "the taker publishing")
    job = taker.job(model)
    taker.stop()
    took_over, done = taker.conversion_span(model)
    return {"seconds": published - killed, "lease_s": LEASE_SECONDS,
            "taker_built": bool(job and not job.installed),
            # From the SIGKILL until the taker's job left DISCOVERED (it took the key over).
            "takeover_s": took_over - killed_wall, "taker_conversion_s": done - took_over}


def idle_baselines(launch: Callable[..., Sidecar], root: Path,
                   walls: dict[str, list[float]]) -> dict[str, Any]:
    """Sidecars with nothing to do: a fleet replica's launch-to-ready seconds (empty store
    and incoming), and per flavour ("alone", "fleet") the CPU seconds of one idle process
    over each wall time in ``walls`` (shutdown included, as the measured ones stop too)."""
    incoming = root / "incoming"
    incoming.mkdir(parents=True)
    startups = [ready_seconds(launch(root / f"start{n}", incoming, root / "store", f"start{n}"))
                for n in range(REPEATS)]
    fleet = launch(root / "fleet", incoming, root / "store", "idle")
    alone = launch(root / "alone", incoming, None, "idle-alone")
    samples: dict[str, list[float]] = {"alone": [], "fleet": []}
    idle = {"alone": alone, "fleet": fleet}
    pending = sorted((wall, flavour) for flavour, ws in walls.items() for wall in ws)
    for wall, flavour in pending:
        process = idle[flavour]
        wait_until(functools.partial(_ran_for, process, wall), wall + 5, "idle wall time")
        process.check_alive()
        samples[flavour].append(process.proc_cpu())
    cpu: dict[str, dict[float, float]] = {}
    for flavour, process in idle.items():
        last = process.proc_cpu()
        shutdown = process.stop() - last
        cpu[flavour] = {wall: sample + shutdown for wall, sample in
                        zip(sorted(walls[flavour]), samples[flavour], strict=True)}
    return {"startup_s": statistics.median(startups), "startup_each_s": startups, "cpu_s": cpu}


def main() -> None:
    """Run every requested model, then the idle baselines; print a table and the JSON."""
    if len(sys.argv) > 1 and sys.argv[1] == "build":
        build_model(sys.argv[2], Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS),
                        choices=["demo", *APPLICATIONS])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tftrt-fleet-bench-"))
    with sidecars() as launch:
        results = [bench_model(launch, name, workdir) for name in args.models]
        idle = idle_baselines(launch, workdir / "idle", {
            f: [r[f]["wall_s"] for r in results] for f in ("alone", "fleet")})
    for r in results:
        r["figures"] = figures(r, idle)
    print_table(results, LEASE_SECONDS)
    text = json.dumps(report(results, idle, workdir), indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
