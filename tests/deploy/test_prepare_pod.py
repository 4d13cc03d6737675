"""The pod's init step (prepare-pod.py in the ConfigMap), run for real: it must point TF
Serving at the very directory the sidecar installs engines into on this node."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from converter import detect_build_device, engine_namespace
from sidecar.tfserving.model_config import render_model_config
from tests.deploy.conftest import Rendered


def _run_prepare_pod(view: Rendered, tmp_path: Path, environ: dict[str, str]) -> Path:
    data = view.one("ConfigMap", "tftrt-sidecar-config")["data"]
    (tmp_path / "prepare-pod.py").write_text(data["prepare-pod.py"])
    (tmp_path / "config.toml").write_text(data["config.toml"])
    env_file = tmp_path / "run" / "serving.env"
    env_file.parent.mkdir()
    result = subprocess.run(
        [sys.executable, str(tmp_path / "prepare-pod.py"),
         f"--config={tmp_path / 'config.toml'}", f"--env-file={env_file}"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **environ},
    )
    assert result.returncode == 0, result.stderr
    return env_file


def _sourced(env_file: Path) -> str:
    """TF_XLA_FLAGS as TF Serving's start command sees it after sourcing the file."""
    out = subprocess.run(
        ["/bin/sh", "-c", f'set -a && . {shlex.quote(str(env_file))} && printf %s "$TF_XLA_FLAGS"'],
        capture_output=True, text=True, check=True, timeout=30,
    )
    return out.stdout


@pytest.fixture(scope="module")
def namespace() -> str:
    """Where ``install_engines`` (the sidecar's job) puts this machine's engines."""
    return engine_namespace(detect_build_device())


def test_tf_serving_is_pointed_at_the_sidecars_engine_namespace(rendered, tmp_path, namespace):
    cache, serving = tmp_path / "engines", tmp_path / "serving"
    environ = {
        # The pod uses the ConfigMap's paths; here they are moved under tmp_path through
        # the sidecar's own environment overrides.
        "TFTRT_SIDECAR_ENGINE_CACHE_DIR": str(cache),
        "TFTRT_SIDECAR_SERVING_BASE": str(serving),
        "TFTRT_SIDECAR_MODEL_CONFIG_FILE": str(serving / "models.config"),
    }
    env_file = _run_prepare_pod(rendered["cpu"], tmp_path, environ)
    directory = cache / namespace
    assert directory.is_dir()
    assert _sourced(env_file) == (
        f"--tf_xla_persistent_cache_directory={directory} "
        "--tf_xla_persistent_cache_read_only=true"
    )
    assert (serving / "models.config").read_text() == render_model_config([], serving)

    # A second start keeps the sidecar's model config as it is.
    (serving / "models.config").write_text(render_model_config(["m"], serving))
    (tmp_path / "again").mkdir()
    _run_prepare_pod(rendered["cpu"], tmp_path / "again", environ)
    assert (serving / "models.config").read_text() == render_model_config(["m"], serving)
