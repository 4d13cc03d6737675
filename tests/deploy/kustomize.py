# mypy: disable-error-code="import-untyped"
"""Render the kustomize directories under k8s/ the way ``kustomize build`` does, for tests.

No kustomize binary exists on the machines the tests run on, so this implements the
subset k8s/ uses: ``resources`` (files and other kustomization directories),
``patches`` as RFC 6902 JSON patches with a kind/name target (add, remove, replace,
test), and ``images`` (newName, newTag). Anything else in a kustomization.yaml is an
error, so a manifest change cannot pass here while meaning something else to kustomize.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

_KUSTOMIZATION_FIELDS = frozenset({"apiVersion", "kind", "resources", "patches", "images"})
_PATCH_FIELDS = frozenset({"path", "target"})
_TARGET_FIELDS = frozenset({"kind", "name"})
_IMAGE_FIELDS = frozenset({"name", "newName", "newTag"})


class RenderError(Exception):
    """A kustomization this renderer cannot render faithfully, or a patch that fails."""


def render(directory: Path) -> list[Manifest]:
    """The manifests ``kustomize build directory`` would print, as dicts."""
    kustomization_file = directory / "kustomization.yaml"
    kustomization = yaml.safe_load(kustomization_file.read_text(encoding="utf-8"))
    unknown = set(kustomization) - _KUSTOMIZATION_FIELDS
    if unknown:
        raise RenderError(f"{kustomization_file}: fields {sorted(unknown)} are not supported")
    if kustomization.get("kind") != "Kustomization":
        raise RenderError(f"{kustomization_file}: kind must be Kustomization")

    manifests: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            manifests.extend(render(path))
        else:
            loaded = yaml.safe_load_all(path.read_text(encoding="utf-8"))
            manifests.extend(document for document in loaded if document is not None)
    for patch in kustomization.get("patches", []):
        _apply_patch(directory, patch, manifests)
    for image in kustomization.get("images", []):
        _apply_image(image, manifests)
    return manifests


def _apply_patch(directory: Path, patch: dict[str, Any], manifests: list[Manifest]) -> None:
    if set(patch) - _PATCH_FIELDS or set(patch.get("target", {})) - _TARGET_FIELDS:
        raise RenderError(f"patch {patch}: only path and a kind/name target are supported")
    target = patch["target"]
    matches = [
        m for m in manifests
        if m["kind"] == target["kind"] and m["metadata"]["name"] == target["name"]
    ]
    if len(matches) != 1:
        raise RenderError(f"patch target {target} matches {len(matches)} manifests, not 1")
    operations = yaml.safe_load((directory / patch["path"]).read_text(encoding="utf-8"))
    if not isinstance(operations, list):
        raise RenderError(f"{patch['path']}: only JSON patches (a list of operations)")
    patched = apply_json_patch(matches[0], operations)
    manifests[manifests.index(matches[0])] = patched


def apply_json_patch(document: Manifest, operations: list[dict[str, Any]]) -> Manifest:
    """A patched copy of ``document`` (RFC 6902: add, remove, replace, test)."""
    result = copy.deepcopy(document)
    for operation in operations:
        op, path = operation["op"], operation["path"]
        parent, key = _resolve_parent(result, path)
        if op == "test":
            if _get(parent, key, path) != operation["value"]:
                raise RenderError(
                    f"test failed at {path}: expected {operation['value']!r}, "
                    f"found {_get(parent, key, path)!r}"
                )
        elif op == "add":
            value = copy.deepcopy(operation["value"])
            if isinstance(parent, list):
                index = len(parent) if key == "-" else _index(parent, key, path, insert=True)
                parent.insert(index, value)
            else:
                parent[key] = value
        elif op == "replace":
            _get(parent, key, path)
            parent[_index(parent, key, path) if isinstance(parent, list) else key] = (
                copy.deepcopy(operation["value"])
            )
        elif op == "remove":
            _get(parent, key, path)
            del parent[_index(parent, key, path) if isinstance(parent, list) else key]
        else:
            raise RenderError(f"JSON patch op {op!r} is not supported")
    return result


def _resolve_parent(document: Any, path: str) -> tuple[Any, str]:
    if not path.startswith("/"):
        raise RenderError(f"JSON pointer {path!r} must start with /")
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]
    node = document
    for token in tokens[:-1]:
        node = _get(node, token, path)
    return node, tokens[-1]


def _get(node: Any, token: str, path: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, token, path)]
    if isinstance(node, dict) and token in node:
        return node[token]
    raise RenderError(f"{path}: {token!r} does not exist")


def _index(node: list[Any], token: str, path: str, *, insert: bool = False) -> int:
    if not token.isdigit() or int(token) > len(node) - (0 if insert else 1):
        raise RenderError(f"{path}: {token!r} is not an index of a {len(node)}-item list")
    return int(token)


def _apply_image(image: dict[str, Any], manifests: list[Manifest]) -> None:
    if set(image) - _IMAGE_FIELDS:
        raise RenderError(f"images entry {image}: only name, newName and newTag")
    for container in pod_containers(manifests):
        name, tag = split_image(container["image"])
        if name == image["name"]:
            container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def split_image(reference: str) -> tuple[str, str]:
    """``(name, tag)`` of an image reference such as ``tensorflow/serving:2.21.0``."""
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:
        return reference, "latest"
    return name, tag


def pod_containers(manifests: list[Manifest]) -> list[dict[str, Any]]:
    """Every container and init container of every pod template in ``manifests``."""
    containers: list[dict[str, Any]] = []
    for manifest in manifests:
        spec = manifest.get("spec", {}).get("template", {}).get("spec")
        if spec:
            containers += spec.get("initContainers", []) + spec.get("containers", [])
    return containers
