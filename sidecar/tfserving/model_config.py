"""TF Serving's ``--model_config_file``: a ModelServerConfig text proto kept by the sidecar."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from durable import temporary_prefix, write_atomically
from sidecar.base.errors import StorageError
from sidecar.base.faults import FaultArea


def render_model_config(models: Iterable[str], serving_base: Path) -> str:
    """The text proto listing ``models`` (sorted, deduplicated) under ``serving_base``."""
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.SetInParent()
    for name in sorted(set(models)):
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = str(serving_base / name)
        entry.model_platform = "tensorflow"
    return str(text_format.MessageToString(config))


class ModelConfigWriter:
    """Rewrites the model config file atomically (``converter.write_atomically``).

    TF Serving re-reads the file (``--model_config_file_poll_wait_seconds``) and
    so sees either the old or the new list, never a torn one.
    """

    def __init__(self, config_file: Path, serving_base: Path) -> None:
        self._file = config_file
        self._serving_base = serving_base

    @property
    def path(self) -> Path:
        """The model config file."""
        return self._file

    def write(self, models: Iterable[str]) -> bool:
        """Make the file list exactly ``models``; return False if it already did (no write)."""
        text = render_model_config(models, self._serving_base)
        try:
            if self._file.read_text(encoding="utf-8") == text:
                return False
        except (FileNotFoundError, UnicodeDecodeError):
            pass
        except OSError as exc:
            raise StorageError.from_os_error(
                exc, action="read TF Serving's model config", path=self._file,
                area=FaultArea.SERVING,
            ) from exc
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self._file, text.encode("utf-8"))
        except OSError as exc:
            raise StorageError.from_os_error(
                exc, action="write TF Serving's model config", path=self._file,
                area=FaultArea.SERVING,
            ) from exc
        return True

    def clean_leftovers(self) -> list[Path]:
        """Delete temp files a stopped process left next to the config file."""
        prefix = temporary_prefix(self._file)
        try:
            names = os.listdir(self._file.parent)
        except FileNotFoundError:
            return []
        removed = [self._file.parent / name for name in names if name.startswith(prefix)]
        for path in removed:
            path.unlink(missing_ok=True)
        return removed
