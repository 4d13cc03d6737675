"""Atomic publishing into TF Serving's model directories, retention, rollback, model config."""

from __future__ import annotations

from sidecar.publish import numbering
from sidecar.publish.layout import published_models, published_versions
from sidecar.publish.model_config import ModelConfigWriter, render_model_config
from sidecar.publish.publisher import Checkpoint, StagedVersion, VersionPublisher, no_checkpoint
from sidecar.publish.retention import (
    RolledBack,
    apply_retention,
    newest_to_roll_back,
    restore_withdrawn,
    roll_back_newest,
    roll_back_version,
    withdraw_version,
)

__all__ = [
    "Checkpoint",
    "ModelConfigWriter",
    "RolledBack",
    "StagedVersion",
    "VersionPublisher",
    "apply_retention",
    "newest_to_roll_back",
    "no_checkpoint",
    "numbering",
    "published_models",
    "published_versions",
    "render_model_config",
    "restore_withdrawn",
    "roll_back_newest",
    "roll_back_version",
    "withdraw_version",
]
