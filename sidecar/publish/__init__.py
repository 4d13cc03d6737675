"""Atomic publishing into TF Serving's model directories, retention and rollback (the
directories' layout and numbering, and the model config, are TF Serving's contract: see
:mod:`sidecar.tfserving`)."""

from __future__ import annotations

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
    "RolledBack",
    "StagedVersion",
    "VersionPublisher",
    "apply_retention",
    "newest_to_roll_back",
    "no_checkpoint",
    "restore_withdrawn",
    "roll_back_newest",
    "roll_back_version",
    "withdraw_version",
]
