"""The sidecar's settings and flags as a rendered pod gives them: parsed by the sidecar's
own CLI parser and loader, with the environment the kubelet would set."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from sidecar.cli import build_parser
from sidecar.config import Settings, load_settings
from tests.deploy.conftest import Rendered

POD_NAME = "tftrt-serving-6c9d7f8b5d-x2k7q"
"""A pod name of the Deployment, as the downward API gives it to the containers."""


def flag_pairs(args: list[str]) -> dict[str, str]:
    """``--name=value`` arguments by name; each written that way, and given once."""
    pairs = {}
    for arg in args:
        assert re.fullmatch(r"--[a-z0-9_-]+=\S+", arg), f"write flags as --name=value: {arg}"
        name, value = arg.split("=", 1)
        assert name not in pairs, f"{name} given twice"
        pairs[name] = value
    return pairs


def sidecar_flags(view: Rendered, container_name: str = "tftrt-sidecar",
                  command: str = "run") -> tuple[argparse.Namespace, dict[str, str]]:
    """The flags of ``container_name`` (running ``tftrt-sidecar command``) parsed by the
    command's own parser in the CLI, and all its flags as given. Every flag must be one
    of that command's, spelled out (argparse would take an abbreviation)."""
    container = view.container(container_name)
    assert container["command"] == ["tftrt-sidecar"]
    assert container["args"][0] == command
    pairs = flag_pairs(container["args"][1:])
    (commands,) = (a for a in build_parser()._actions
                   if isinstance(a, argparse._SubParsersAction))
    parser = commands.choices[command]
    known = {option for action in parser._actions for option in action.option_strings}
    unknown = set(pairs) - known
    assert not unknown, f"{view.overlay}: flags tftrt-sidecar {command} lacks: {unknown}"
    namespace = parser.parse_args(container["args"][1:])
    return namespace, pairs


def container_env(view: Rendered, name: str) -> dict[str, str]:
    """The environment of container ``name`` as the kubelet sets it in the pod ``POD_NAME``:
    its ``envFrom`` ConfigMaps first, then its ``env``, which wins where both set a name."""
    container = view.container(name)
    environ = {}
    for source in container.get("envFrom", []):
        assert source.keys() == {"configMapRef"}, f"{view.overlay}: {name} envFrom {source}"
        environ.update(view.one("ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        if "value" in item:
            environ[item["name"]] = item["value"]
        else:
            assert item["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}, item
            environ[item["name"]] = POD_NAME
    return environ


def sidecar_settings(view: Rendered, tmp_path: Path) -> Settings:
    """The sidecar's settings exactly as the pod would load them (ConfigMap TOML, env, flags)."""
    namespace, _ = sidecar_flags(view)
    config_path = Path(namespace.config)
    config_map = view.one("ConfigMap", "tftrt-sidecar-config")
    mounted = view.mounts("tftrt-sidecar")[str(config_path.parent)]
    assert view.volume(mounted["name"])["configMap"]["name"] == config_map["metadata"]["name"]
    local = tmp_path / config_path.name
    local.write_text(config_map["data"][config_path.name], encoding="utf-8")
    environ = container_env(view, "tftrt-sidecar")
    return load_settings(namespace, environ, local)


def covering_mount(view: Rendered, container: str, path: Path) -> dict[str, Any]:
    """The mount of ``container`` that ``path`` is on (the deepest one holding it)."""
    mounts = view.mounts(container)
    covering = [m for p, m in mounts.items() if path == Path(p) or Path(p) in path.parents]
    assert covering, f"{view.overlay}: {container} has no volume mounted at {path}"
    return max(covering, key=lambda m: len(m["mountPath"]))
