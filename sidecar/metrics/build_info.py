"""What is running: the sidecar's version, TensorFlow's version and the configured backend."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata


@dataclass(frozen=True)
class BuildInfo:
    """The labels of ``tftrt_sidecar_build_info``."""

    version: str
    """The tftrt-sidecar package version."""
    tensorflow_version: str
    """TensorFlow's version (engines are only valid for it)."""
    backend: str
    """The configured default backend ("auto", "xla" or "tensorrt")."""

    @classmethod
    def detect(cls, backend: str) -> BuildInfo:
        """Read the installed versions; ``backend`` is the configured default policy's."""
        import tensorflow as tf

        try:
            version = metadata.version("tftrt-sidecar")
        except metadata.PackageNotFoundError:
            version = "unknown"
        return cls(version=version, tensorflow_version=str(tf.__version__), backend=backend)
