"""What the TF Serving stand-in should serve (test-only): models, base paths, version
policies and labels, from flags or a `ModelServerConfig` text proto."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


@dataclass(frozen=True)
class ModelConfig:
    """One model to serve: its name, base path, version policy and labels."""

    name: str
    base_path: Path
    policy: str = "latest"
    """`latest`, `all` or `specific` (as in `FileSystemStoragePathSourceConfig`)."""
    latest_count: int = 1
    """With `latest`: how many of the newest versions to serve."""
    specific_versions: frozenset[int] = frozenset()
    """With `specific`: exactly these versions."""
    labels: dict[str, int] = field(default_factory=dict)
    """Version labels (`stable` -> 3)."""

    def wanted_versions(self, on_disk: list[int]) -> set[int]:
        """The versions among `on_disk` this policy serves."""
        if self.policy == "all":
            return set(on_disk)
        if self.policy == "specific":
            return set(on_disk) & set(self.specific_versions)
        return set(sorted(on_disk)[-self.latest_count :]) if self.latest_count > 0 else set()


def numeric_versions(base_path: Path) -> list[int]:
    """Numeric child directories of `base_path`, as TF Serving sees versions; others ignored."""
    if not base_path.is_dir():
        return []
    versions = []
    for child in base_path.iterdir():
        if child.name.isdigit() and child.is_dir():
            versions.append(int(child.name))
    return sorted(versions)


def parse_model_server_config(text: str) -> list[ModelConfig]:
    """Parse a `ModelServerConfig` text proto (`model_config_list` only)."""
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(text, config)
    return from_model_server_config(config)


def from_model_server_config(
    config: model_server_config_pb2.ModelServerConfig,
) -> list[ModelConfig]:
    """Models of a parsed `ModelServerConfig`."""
    models = []
    for entry in config.model_config_list.config:
        choice = entry.model_version_policy.WhichOneof("policy_choice")
        if choice == "all":
            models.append(ModelConfig(entry.name, Path(entry.base_path), "all"))
        elif choice == "specific":
            models.append(
                ModelConfig(
                    entry.name,
                    Path(entry.base_path),
                    "specific",
                    specific_versions=frozenset(entry.model_version_policy.specific.versions),
                    labels=dict(entry.version_labels),
                )
            )
            continue
        else:
            latest = entry.model_version_policy.latest.num_versions if choice == "latest" else 1
            models.append(
                ModelConfig(entry.name, Path(entry.base_path), "latest", latest_count=latest or 1)
            )
        models[-1].labels.update(entry.version_labels)
    return models
