"""Engines inside a converted SavedModel, and installing them into a serving cache.

XLA's persistent compilation cache (`TF_XLA_FLAGS=--tf_xla_persistent_cache_directory`)
holds compiled executables keyed by function signature, HLO and device type, but
not by TensorFlow version or device model: the directory names both."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import secrets
import shutil

from converter.device import BuildDevice, detect_build_device, engine_namespace
from durable import fsync_directory, fsync_file, temporary_prefix

ENGINES_SUBDIR = pathlib.Path("assets.extra", "tftrt", "engines")


def engines_dir(saved_model_dir: pathlib.Path, namespace: str) -> pathlib.Path:
    """Where a converted SavedModel keeps the engines built for one namespace."""
    return saved_model_dir / ENGINES_SUBDIR / namespace


@dataclasses.dataclass(frozen=True)
class InstallResult:
    """What `install_engines` did."""

    namespace: str
    directory: pathlib.Path
    """The cache directory to give TF Serving (`--tf_xla_persistent_cache_directory`)."""
    installed: int
    already_present: int
    bytes: int
    note: str

    def xla_flags(self) -> str:
        """TF_XLA_FLAGS for a serving process that should read these engines."""
        return (f"--tf_xla_persistent_cache_directory={self.directory} "
                "--tf_xla_persistent_cache_read_only=true")


def install_engines(
    saved_model_dir: str | os.PathLike[str],
    cache_root: str | os.PathLike[str],
    device: BuildDevice | None = None,
) -> InstallResult:
    """Copy the model's engines for this TF version and device into `cache_root`.

    Files are copied under a temporary name and renamed, so a serving process
    never reads half an engine; existing files are left as they are."""
    namespace = engine_namespace(device or detect_build_device())
    target = pathlib.Path(cache_root) / namespace
    source = engines_dir(pathlib.Path(saved_model_dir), namespace)
    if not source.is_dir():
        available = sorted(
            str(p.relative_to(pathlib.Path(saved_model_dir) / ENGINES_SUBDIR))
            for p in (pathlib.Path(saved_model_dir) / ENGINES_SUBDIR).glob("*/*")
        )
        note = (f"no engines for {namespace} in this model (it has {available or 'none'}); "
                "serving will compile prebuilt shapes on first use")
        return InstallResult(namespace, target, 0, 0, 0, note)
    target.mkdir(parents=True, exist_ok=True)
    installed = present = size = 0
    for entry in sorted(source.iterdir()):
        destination = target / entry.name
        if destination.exists():
            present += 1
            continue
        # A name of this call's own: replicas sharing a node's cache may install the same
        # engine at once (each renames a whole copy; the later one replaces an equal file).
        temporary = target / f"{temporary_prefix(destination)}{secrets.token_hex(4)}"
        try:
            shutil.copyfile(entry, temporary)
            fsync_file(temporary)
            os.rename(temporary, destination)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        installed += 1
        size += destination.stat().st_size
    fsync_directory(target)
    return InstallResult(namespace, target, installed, present, size, "installed")
