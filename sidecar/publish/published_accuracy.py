"""What a converted version computes in and how accurate it measured, as its job wrote it
into the version (``assets.extra/tftrt/accuracy.json``) before publishing it.

The file travels with the version: TF Serving ignores it, a fleet's artifact carries it to
every replica that installs the version, and the admin API reads it back
(:mod:`sidecar.publish.published`). A version published as the original after a failed
conversion has none: it computes as exported, and was not measured.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from converter import SavedModelError
from durable import write_atomically

ACCURACY_FILE: Final = Path("assets.extra", "tftrt", "accuracy.json")
"""Where in a published version its record is."""


@dataclass(frozen=True)
class AccuracyRecord:
    """A converted version's precision and its outputs against the original's."""

    precision: str
    """What it computes in: FP32, FP16, BF16 or INT8 (the converter's measured candidate's)."""

    precision_reason: str
    """Why that precision: what the policy allowed, and what could not be tried and why."""

    compared_on: str
    """"replay inputs", or "held-out samples and replay inputs" where requests were
    recorded (the held-out ones were never given to calibration)."""

    compared: int
    """Requests compared."""

    scaled_error: float
    """Largest scaled error over the outputs checked by scaled error (0.0 when none was)."""

    max_scaled_error: float
    """The bound it was held to."""

    top1_agreement: float | None
    """Lowest share of rows with the original's top-1 class, over the outputs checked by
    top-1 agreement; None when none was."""

    top1_rows: int
    """Rows that agreement was counted on."""

    min_top1_agreement: float
    """The share it was held to."""

    def write(self, version_dir: Path) -> None:
        """Write the record into ``version_dir`` (a staged version), replacing any."""
        path = version_dir / ACCURACY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(asdict(self), indent=1).encode())

    @classmethod
    def read(cls, version_dir: Path) -> AccuracyRecord | None:
        """The record of the version at ``version_dir``; None when it has none. Raises
        SavedModelError naming the file when it is not a record."""
        path = version_dir / ACCURACY_FILE
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise SavedModelError(
                f"{path} is not a readable accuracy record: {exc}. Convert the model again "
                "to rewrite it, or remove the file.") from exc
