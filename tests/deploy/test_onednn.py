"""oneDNN is the same in every process that runs the models: TF Serving and the sidecar
start with one TF_ENABLE_ONEDNN_OPTS, "1", in every overlay and in the sidecar's image, and
a sidecar started without oneDNN says so.

The sidecar measures and verifies each version in its own process tree and TF Serving
serves it; TensorFlow 2.21 turns oneDNN on by itself only on CPUs with AVX512_VNNI,
AVX512_BF16 or AMX, so elsewhere the variable alone decides whether the two run the same
kernels (int8 ops run only with oneDNN).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import K8S, OVERLAYS, REPO, Rendered
from tests.deploy.pod_settings import container_env
from tests.deploy.rendering import render, split_image

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"

MODEL_RUNNERS = ("tf-serving", "tftrt-sidecar")
"""The containers that run the models: the one that serves them and the one that measures
and verifies them (no init container runs a model)."""


def _onednn_setting(view: Rendered) -> str:
    """The TF_ENABLE_ONEDNN_OPTS every model-running container starts with; fails, naming
    the overlay and containers, when one lacks it or they differ."""
    given = {name: container_env(view, name).get(ONEDNN) for name in MODEL_RUNNERS}
    missing = [name for name, value in given.items() if value is None]
    assert not missing, f"{view.overlay}: {missing} start without {ONEDNN}"
    assert len(set(given.values())) == 1, f"{view.overlay}: {ONEDNN} differs: {given}"
    return str(given["tf-serving"])


def _image_env(dockerfile: str) -> dict[str, str]:
    """The ENV of the Dockerfile's last stage: what ``docker run`` starts the image with."""
    text = (REPO / dockerfile).read_text().replace("\\\n", " ")
    stage = text.rsplit("\nFROM ", 1)[1]
    environ: dict[str, str] = {}
    for line in stage.splitlines():
        if line.startswith("ENV "):
            environ.update(pair.partition("=")[::2] for pair in shlex.split(line[4:]))
    return environ


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tf_serving_and_the_sidecar_start_with_onednn_on(rendered, overlay):
    assert _onednn_setting(rendered[overlay]) == "1"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_sidecar_image_sets_what_the_pod_sets(rendered, overlay):
    view = rendered[overlay]
    _, tag = split_image(view.container("tftrt-sidecar")["image"])
    dockerfile = "Dockerfile.tf217" if tag.endswith("-tf217") else "Dockerfile"
    assert _image_env(dockerfile).get(ONEDNN) == _onednn_setting(view), dockerfile


# JSON patches over the CPU overlay, each undoing the agreement one way.
_SERVING_LOSES_IT = """
- {op: test, path: /spec/template/spec/containers/0/name, value: tf-serving}
- {op: remove, path: /spec/template/spec/containers/0/envFrom}
"""
_SIDECAR_OVERRIDES_IT = """
- {op: test, path: /spec/template/spec/containers/1/name, value: tftrt-sidecar}
- {op: add, path: /spec/template/spec/containers/1/env/-,
   value: {name: TF_ENABLE_ONEDNN_OPTS, value: "0"}}
"""


def _cpu_overlay_with(tmp_path: Path, kustomization: str) -> Rendered:
    """The CPU overlay rendered under ``kustomization`` (its patches and generators)."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    # kustomize takes no absolute resource paths.
    base = os.path.relpath(K8S / "overlays" / "cpu", overlay)
    (overlay / "kustomization.yaml").write_text(f"resources: [{base}]\n{kustomization}")
    return Rendered("edited", render(overlay))


@pytest.mark.parametrize(("patch", "message"), [
    (_SERVING_LOSES_IT, r"\['tf-serving'\] start without TF_ENABLE_ONEDNN_OPTS"),
    (_SIDECAR_OVERRIDES_IT, "TF_ENABLE_ONEDNN_OPTS differs"),
])
def test_the_check_fails_when_one_container_loses_or_overrides_it(tmp_path, patch, message):
    indented = "".join(f"      {line}\n" for line in patch.strip().splitlines())
    view = _cpu_overlay_with(tmp_path, "patches:\n  - target: {kind: Deployment}\n"
                                       f"    patch: |-\n{indented}")
    with pytest.raises(AssertionError, match=message):
        _onednn_setting(view)


def test_the_setting_changes_in_one_place_for_both(tmp_path):
    view = _cpu_overlay_with(tmp_path, "configMapGenerator:\n  - name: tftrt-tensorflow-env\n"
                                       "    behavior: merge\n"
                                       "    literals: [TF_ENABLE_ONEDNN_OPTS=0]\n")
    assert _onednn_setting(view) == "0"


def _sidecar_once(tmp_path: Path, onednn: str) -> subprocess.CompletedProcess[str]:
    """``tftrt-sidecar run --once`` over empty directories, with TF_ENABLE_ONEDNN_OPTS."""
    root = tmp_path / f"onednn-{onednn}"
    (root / "incoming").mkdir(parents=True)
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "run", "--once",
         "--incoming", str(root / "incoming"), "--serving", str(root / "serving"),
         "--state", str(root / "state"), "--engine-cache", str(root / "engine-cache"),
         "--model-config-file", str(root / "serving" / "models.config")],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, ONEDNN: onednn})


def test_the_sidecar_says_when_onednn_is_off_in_its_process(tmp_path):
    # This CPU (AVX2 only) leaves oneDNN off unless the variable turns it on; on one with
    # VNNI, BF16 or AMX "0" still turns it off.
    off = _sidecar_once(tmp_path, "0")
    assert off.returncode == 0, off.stderr
    (line,) = [line for line in off.stderr.splitlines() if "oneDNN" in line]
    assert " WARNING sidecar: oneDNN is off in this process" in line
    assert "TF_ENABLE_ONEDNN_OPTS=1" in line and "TF Serving the same" in line
    on = _sidecar_once(tmp_path, "1")
    assert on.returncode == 0, on.stderr
    assert "oneDNN" not in on.stderr, on.stderr
