"""Ports, paths, flags and volume mounts agree between k8s/, the Dockerfiles and the
sidecar's own defaults and parser, so that none of them can drift from the others."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.config import Address, defaults
from sidecar.envoy.binary import ENVOY_RELEASE
from tests.deploy.conftest import GPU_OVERLAYS, OVERLAYS, REPO
from tests.deploy.pod_settings import (
    covering_mount,
    flag_pairs,
    sidecar_flags,
    sidecar_settings,
)
from tests.deploy.rendering import split_image

NETWORK_FLAGS = ("--tap-listen", "--upstream", "--rest-listen", "--rest-upstream",
                 "--proxy-stats-listen", "--admin-listen", "--metrics-listen")
"""The sidecar's flags that name addresses; the manifests give each of them."""

ENVOY_FLAGS = ("--config", "--tap-listen", "--upstream", "--rest-listen", "--rest-upstream",
               "--proxy-stats-listen")
"""What Envoy's bootstrap is made from: given the same to the init step and to run."""

# tensorflow_model_server's flags (tensorflow/serving, tensorflow_serving/model_servers/
# main.cc): the ones this deployment may use, by release. 2.18 added XLA:GPU.
TF_SERVING_FLAGS_2_17 = frozenset({
    "port", "rest_api_port", "model_config_file", "model_config_file_poll_wait_seconds",
    "file_system_poll_wait_seconds", "enable_model_warmup", "enable_grpc_healthcheck_service",
    "xla_cpu_compilation_enabled", "monitoring_config_file", "enable_batching",
    "batching_parameters_file", "grpc_channel_arguments",
})
TF_SERVING_FLAGS_2_18 = TF_SERVING_FLAGS_2_17 | {"xla_gpu_compilation_enabled"}

def _port(address: str) -> int:
    return Address.parse(address, "a -listen flag", "the rendered manifests").port


def _dockerfile_arg(dockerfile: str, name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", (REPO / dockerfile).read_text(), re.MULTILINE)
    assert match, f"{dockerfile} has no ARG {name}"
    return match.group(1)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_map_loads_with_the_sidecars_own_loader(rendered, overlay, tmp_path):
    settings = sidecar_settings(rendered[overlay], tmp_path)
    assert settings.paths.incoming_base == defaults.DEFAULT_INCOMING_BASE
    assert settings.paths.serving_base == defaults.DEFAULT_SERVING_BASE
    assert settings.paths.state_dir == defaults.DEFAULT_STATE_DIR
    assert settings.paths.engine_cache_dir == defaults.DEFAULT_ENGINE_CACHE_DIR
    assert settings.paths.model_config_file == defaults.DEFAULT_MODEL_CONFIG_FILE
    expected_backend = "tensorrt" if overlay == "tf217-tensorrt" else "auto"
    assert settings.default_policy.backend == expected_backend


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_sidecar_directories_are_mounted_as_it_uses_them(rendered, overlay, tmp_path):
    view = rendered[overlay]
    settings = sidecar_settings(view, tmp_path)
    writable = {
        settings.paths.serving_base: "serving-models", settings.paths.state_dir: "state",
        settings.paths.engine_cache_dir: "engine-cache",
    }
    for path, volume in writable.items():
        mount = covering_mount(view, "tftrt-sidecar", path)
        assert mount["name"] == volume and not mount.get("readOnly", False), path
    if settings.fleet.store is not None:
        store = covering_mount(view, "tftrt-sidecar", settings.fleet.store)
        assert store["mountPath"] == str(settings.fleet.store) and not store.get("readOnly", False)
    incoming = covering_mount(view, "tftrt-sidecar", settings.paths.incoming_base)
    assert incoming["mountPath"] == str(settings.paths.incoming_base)
    assert incoming["readOnly"] is True
    assert settings.paths.model_config_file.parent == settings.paths.serving_base
    assert view.volume("engine-cache")["hostPath"]["path"] == str(settings.paths.engine_cache_dir)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tf_serving_reads_what_the_sidecar_writes(rendered, overlay, tmp_path):
    view = rendered[overlay]
    settings = sidecar_settings(view, tmp_path)
    serving = view.container("tf-serving")
    flags = flag_pairs(serving["args"])
    assert flags["--model_config_file"] == str(settings.paths.model_config_file)
    assert int(flags["--model_config_file_poll_wait_seconds"]) > 0
    assert flags["--file_system_poll_wait_seconds"] == "1"
    for path, volume in ((settings.paths.serving_base, "serving-models"),
                         (settings.paths.engine_cache_dir, "engine-cache")):
        mount = view.mounts("tf-serving")[str(path)]
        assert mount["name"] == volume and mount["readOnly"] is True
    assert "incoming" not in {m["name"] for m in view.mounts("tf-serving").values()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tf_serving_gets_its_xla_flags_from_the_init_step(rendered, overlay, tmp_path):
    view = rendered[overlay]
    settings = sidecar_settings(view, tmp_path)
    prepare = view.container("prepare-pod")
    assert prepare["image"] == view.container("tftrt-sidecar")["image"]
    prepare_flags = flag_pairs(prepare["command"][2:])
    assert prepare_flags["--config"] == sidecar_flags(view)[0].config
    env_file = Path(prepare_flags["--env-file"])
    serving = view.container("tf-serving")
    script = serving["command"][2]
    assert serving["command"][:2] == ["/bin/sh", "-c"]
    assert f". {env_file} " in script and 'exec /usr/bin/tensorflow_model_server "$@"' in script
    shared = view.mounts("tf-serving")[str(env_file.parent)]
    assert view.mounts("prepare-pod")[str(env_file.parent)]["name"] == shared["name"]
    assert "emptyDir" in view.volume(shared["name"])
    for path, volume in ((settings.paths.engine_cache_dir, "engine-cache"),
                         (settings.paths.serving_base, "serving-models")):
        mount = view.mounts("prepare-pod")[str(path)]
        assert mount["name"] == volume and not mount.get("readOnly", False)
    owner = view.container("engine-cache-owner")
    assert owner["command"] == ["chown", "10001:10001", str(settings.paths.engine_cache_dir)]
    assert owner["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_agree_with_the_sidecar_defaults(rendered, overlay):
    view = rendered[overlay]
    _, network = sidecar_flags(view)
    assert network["--tap-listen"] == str(defaults.DEFAULT_TAP_LISTEN)
    assert network["--upstream"] == str(defaults.DEFAULT_UPSTREAM)
    assert network["--rest-upstream"] == str(defaults.DEFAULT_REST_UPSTREAM)
    assert network["--metrics-listen"] == str(defaults.DEFAULT_METRICS_LISTEN)
    assert network["--run-envoy"] == "false"  # Envoy is a container of its own
    # Same port as the default; on the pod IP so the kubelet's gRPC probes reach it.
    assert network["--admin-listen"] == f"0.0.0.0:{defaults.DEFAULT_ADMIN_LISTEN.port}"
    tap, rest, stats, admin, metrics = (_port(network[f]) for f in (
        "--tap-listen", "--rest-listen", "--proxy-stats-listen", "--admin-listen",
        "--metrics-listen"))

    def ports(container: str) -> dict[str, int]:
        return {p["name"]: p["containerPort"] for p in view.container(container)["ports"]}

    assert ports("tftrt-sidecar") == {"admin": admin, "metrics": metrics}
    assert ports("envoy") == {"grpc": tap, "rest": rest, "proxy-metrics": stats}
    serving = view.container("tf-serving")
    flags = flag_pairs(serving["args"])
    assert network["--upstream"] == "127.0.0.1:" + flags["--port"]
    assert network["--rest-upstream"] == "127.0.0.1:" + flags["--rest_api_port"]
    assert set(ports("tf-serving").values()) == {int(flags["--port"]),
                                                  int(flags["--rest_api_port"])}

    by_name = {**ports("envoy"), **ports("tftrt-sidecar")}
    client = view.one("Service", "tftrt-serving")
    assert {(p["name"], p["port"], by_name[p["targetPort"]]) for p in client["spec"]["ports"]} \
        == {("grpc", tap, tap), ("rest", rest, rest)}
    metrics_service = view.one("Service", "tftrt-sidecar-metrics")
    assert {by_name[p["targetPort"]] for p in metrics_service["spec"]["ports"]} == {
        metrics, stats}
    for service in view.all("Service"):
        targets = {p["targetPort"] for p in service["spec"]["ports"]}
        assert not targets & {"admin", admin, "grpc-upstream", "rest-upstream"}, service


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_envoy_runs_the_bootstrap_the_sidecar_writes_for_it(rendered, overlay, tmp_path):
    view = rendered[overlay]
    _, run = sidecar_flags(view)
    _, init = sidecar_flags(view, "envoy-bootstrap", "envoy-bootstrap")
    assert {flag: init[flag] for flag in ENVOY_FLAGS} == {flag: run[flag] for flag in ENVOY_FLAGS}
    envoy = view.container("envoy")
    name, tag = split_image(envoy["image"])
    assert (name, tag) == ("envoyproxy/envoy", f"v{ENVOY_RELEASE}")
    bootstrap = Path(init["--out"])
    assert envoy["args"][:2] == ["-c", str(bootstrap)]
    written, read = (covering_mount(view, c, bootstrap) for c in ("envoy-bootstrap", "envoy"))
    assert written["name"] == read["name"] and read.get("readOnly") is True
    assert "emptyDir" in view.volume(read["name"])
    # The init step's own command, run here: Envoy accepts what it writes.
    config_map = view.one("ConfigMap", "tftrt-sidecar-config")
    config = tmp_path / Path(init["--config"]).name
    config.write_text(config_map["data"][config.name], encoding="utf-8")
    args = [f"{k}={v}" for k, v in init.items() if k not in ("--config", "--out")]
    done = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "envoy-bootstrap", f"--config={config}",
         f"--out={tmp_path / 'envoy.json'}", *args],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "envoy.json").is_file()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_are_grpc_on_the_health_ports(rendered, overlay):
    view = rendered[overlay]
    _, network = sidecar_flags(view)
    serving_port = int(flag_pairs(view.container("tf-serving")["args"])["--port"])
    expected = {"tftrt-sidecar": _port(network["--admin-listen"]), "tf-serving": serving_port}
    for name, port in expected.items():
        container = view.container(name)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port, (name, probe)
    flags = flag_pairs(view.container("tf-serving")["args"])
    assert flags["--enable_grpc_healthcheck_service"] == "true"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_admits_only_the_tap_and_metrics(rendered, overlay):
    view = rendered[overlay]
    policy = view.one("NetworkPolicy")
    _, network = sidecar_flags(view)
    pod_labels = view.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    admitted = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert admitted == {_port(network[flag]) for flag in (
        "--tap-listen", "--rest-listen", "--metrics-listen", "--proxy-stats-listen")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tf_serving_flags_exist_in_its_release(rendered, overlay):
    view = rendered[overlay]
    serving = view.container("tf-serving")
    name, tag = split_image(serving["image"])
    assert name == "tensorflow/serving"
    release = tuple(int(part) for part in tag.split("-")[0].split(".")[:2])
    known = TF_SERVING_FLAGS_2_18 if release >= (2, 18) else TF_SERVING_FLAGS_2_17
    flags = flag_pairs(serving["args"])
    assert {f[2:] for f in flags} <= known
    xla = {f for f in flags if f.startswith("--xla_")}
    expected = {
        "gpu": {"--xla_gpu_compilation_enabled"},
        "tf217-tensorrt": set(),
    }.get(overlay, {"--xla_cpu_compilation_enabled"})
    assert xla == expected


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tf_serving_and_sidecar_share_one_tensorflow_version(rendered, overlay):
    view = rendered[overlay]
    _, serving_tag = split_image(view.container("tf-serving")["image"])
    _, sidecar_tag = split_image(view.container("tftrt-sidecar")["image"])
    dockerfile = "Dockerfile.tf217" if sidecar_tag.endswith("-tf217") else "Dockerfile"
    tensorflow = _dockerfile_arg(dockerfile, "TENSORFLOW_VERSION")
    gpu = "-gpu" if overlay in GPU_OVERLAYS else ""
    assert serving_tag == tensorflow + gpu
    if dockerfile == "Dockerfile":
        assert sidecar_tag == "0.1.0" + gpu
        import tensorflow as tf

        assert tf.__version__.split(".")[:2] == tensorflow.split(".")[:2]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpus_are_requested_only_in_gpu_overlays(rendered, overlay):
    view = rendered[overlay]
    wanted = {"prepare-pod", "tf-serving", "tftrt-sidecar"} if overlay in GPU_OVERLAYS else set()
    asked = {
        c["name"] for c in view.pod.get("initContainers", []) + view.pod["containers"]
        if "nvidia.com/gpu" in str(c.get("resources", {}))
    }
    assert asked == wanted
    for container in view.pod.get("initContainers", []) + view.pod["containers"]:
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_run_locked_down(rendered, overlay):
    view = rendered[overlay]
    pod_security = view.pod["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert view.pod["automountServiceAccountToken"] is False
    for container in view.pod.get("initContainers", []) + view.pod["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        if container["name"] != "engine-cache-owner":
            assert "runAsUser" not in security and "add" not in security["capabilities"]
    writable_tmp = {m["name"] for m in view.mounts("tftrt-sidecar").values()} & {"sidecar-tmp"}
    assert writable_tmp and "/tmp" in view.mounts("tf-serving")


def test_dockerfile_exposes_the_sidecar_ports_and_probes_the_admin_api(rendered):
    text = (REPO / "Dockerfile").read_text()
    expose = re.search(r"^EXPOSE (.+)$", text, re.MULTILINE)
    assert expose, "Dockerfile has no EXPOSE"
    exposed = {int(p) for p in expose.group(1).split()}
    _, network = sidecar_flags(rendered["cpu"])
    assert exposed == {_port(v) for k, v in network.items() if k.endswith("-listen")}
    assert f"'{defaults.DEFAULT_ADMIN_LISTEN}'" in text
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    pod_security = rendered["cpu"].pod["securityContext"]
    assert (pod_security["runAsUser"], pod_security["runAsGroup"]) == (10001, 10001)
    assert 'ENTRYPOINT ["tftrt-sidecar"]' in text


def test_tf_serving_start_command_runs_under_sh(rendered, tmp_path):
    # The command as the container runs it: sh sources the env file, then execs the
    # server with the manifest's args. A stand-in server prints what it was given.
    serving = rendered["cpu"].container("tf-serving")
    env_file = tmp_path / "serving.env"
    env_file.write_text("TF_XLA_FLAGS='--tf_xla_persistent_cache_directory=/c/tf-2.21.0/cpu-x "
                        "--tf_xla_persistent_cache_read_only=true'\n")
    fake_server = tmp_path / "tensorflow_model_server"
    fake_server.write_text('#!/bin/sh\nprintf "%s\\n" "$TF_XLA_FLAGS" "$@"\n')
    fake_server.chmod(0o755)
    script = serving["command"][2].replace("/run/tftrt/serving.env", str(env_file)).replace(
        "/usr/bin/tensorflow_model_server", str(fake_server))
    out = subprocess.run(
        ["/bin/sh", "-c", script, *serving["command"][3:], *serving["args"]],
        capture_output=True, text=True, check=True, timeout=30, env={"PATH": os.defpath},
    ).stdout.splitlines()
    assert out[0].startswith("--tf_xla_persistent_cache_directory=/c/tf-2.21.0/cpu-x ")
    assert out[1:] == serving["args"]
    assert shlex.split(out[0])[1] == "--tf_xla_persistent_cache_read_only=true"
