"""Per-model controls set through the admin API (pause, policy overrides), kept durably.

:class:`Controls` is what the service and the admin backend use; this module keeps them
for one pod (:class:`ModelControls`), :mod:`sidecar.state.fleet_controls` for a fleet, in
its store. One pod's are one small JSON file in the state directory, replaced atomically
on every change (``converter.write_atomically``: temporary file, fsync, rename, fsync the
directory), so a crash leaves either the old controls or the new ones. The service asks
:meth:`Controls.is_paused` before it starts a model's job and :meth:`Controls.policy_for`
for its policy.
"""

from __future__ import annotations

import abc
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from durable import write_atomically
from sidecar.base.errors import ConfigError, StorageError
from sidecar.base.faults import FaultArea
from sidecar.config import ModelPolicy
from sidecar.config.overrides import PolicyOverrides

CONTROLS_FILE_NAME: Final = "admin-controls.json"
"""The file's name inside the state directory."""

_FORMAT: Final = 1
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelControl:
    """What the admin API set for one model."""

    model: str
    """Model name."""

    paused: bool = False
    """True: no new conversions start for it."""

    pause_reason: str = ""
    """Why it was paused, as given."""

    overrides: PolicyOverrides = field(default_factory=PolicyOverrides)
    """Persisted policy overrides."""

    @property
    def is_set(self) -> bool:
        """Whether anything differs from the defaults (a pause or an override)."""
        return self.paused or not self.overrides.empty


class Controls(abc.ABC):
    """The per-model controls the service and the admin backend use, wherever they are kept:
    :class:`ModelControls` (one pod: a file in its state directory) or
    :class:`~sidecar.state.fleet_controls.FleetControls` (a fleet: records in the store).

    The rules are here, once: a pause keeps the overrides, overrides keep the pause,
    overrides are checked on the configured policy. Subclasses read (:meth:`get`,
    :meth:`models`) and make a change durable (:meth:`_change`). Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conflicts_logged: set[tuple[str, PolicyOverrides]] = set()

    @abc.abstractmethod
    def get(self, model: str) -> ModelControl:
        """The controls of ``model`` (defaults if none were set)."""

    @abc.abstractmethod
    def models(self) -> list[str]:
        """Models with any control set, sorted."""

    @abc.abstractmethod
    def _change(self, model: str, edit: Callable[[ModelControl], ModelControl]) -> ModelControl:
        """Persist ``edit`` of the model's current controls; return the result.

        ``edit`` may be called more than once (on controls changed meanwhile elsewhere) and
        raises to change nothing. Raises StorageError, changing nothing, when the result
        cannot be persisted.
        """

    def is_paused(self, model: str) -> bool:
        """Whether new conversions of ``model`` are held back."""
        return self.get(model).paused

    def policy_for(self, model: str, configured: ModelPolicy) -> ModelPolicy:
        """``configured`` with the model's persisted overrides applied.

        Overrides that no longer hold together with the configured policy (the config
        changed since they were set, e.g. a lower ``max_engines``) are not applied: the
        configured policy is used, and the conflict logged once, naming the fix."""
        overrides = self.get(model).overrides
        try:
            return overrides.checked_on(configured, f"the persisted policy overrides of {model}")
        except ConfigError as error:
            with self._lock:
                first = (model, overrides) not in self._conflicts_logged
                self._conflicts_logged.add((model, overrides))
            if first:
                _LOG.error("%s; model %s uses its configured policy until its overrides are "
                           "changed (tftrt-sidecar admin policy %s --clear)", error, model, model)
            return configured

    def set_overrides(
        self, model: str, overrides: PolicyOverrides, *, clear: bool = False,
        configured: ModelPolicy | None = None,
    ) -> ModelControl:
        """Merge ``overrides`` into the model's (or replace them, with ``clear``); persist.

        With ``configured`` (the model's configured policy), overrides that would not
        hold together on it (e.g. more default batch sizes than
        max_engines) raise ConfigError instead.
        """
        def merge(current: ModelControl) -> ModelControl:
            merged = overrides if clear else current.overrides.merged_with(overrides)
            if configured is not None:
                merged.checked_on(configured, "the policy overrides")
            return ModelControl(model, current.paused, current.pause_reason, merged)

        return self._change(model, merge)

    def pause(self, model: str, reason: str) -> ModelControl:
        """Hold back new conversions of ``model``; persist."""
        return self._change(
            model, lambda current: ModelControl(model, True, reason, current.overrides))

    def resume(self, model: str) -> ModelControl:
        """Let conversions of ``model`` start again; persist."""
        return self._change(
            model, lambda current: ModelControl(model, False, "", current.overrides))


class ModelControls(Controls):
    """The durable per-model controls of one pod, in its state directory. Build with
    :meth:`open`."""

    def __init__(self, path: Path, controls: dict[str, ModelControl]) -> None:
        super().__init__()
        self._path = path
        self._controls = controls

    @classmethod
    def open(cls, state_dir: Path) -> ModelControls:
        """Load the controls from ``state_dir`` (none yet if the file does not exist).

        Raises StorageError when the file cannot be read or is not a controls file.
        """
        path = state_dir / CONTROLS_FILE_NAME
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path, {})
        except OSError as exc:
            raise StorageError.from_os_error(
                exc, action="read the admin controls", path=path, area=FaultArea.STATE
            ) from exc
        return cls(path, _parse(text, path))

    @property
    def path(self) -> Path:
        """The JSON file."""
        return self._path

    def get(self, model: str) -> ModelControl:
        """The controls of ``model`` (defaults if none were set)."""
        with self._lock:
            return self._controls.get(model, ModelControl(model))

    def models(self) -> list[str]:
        """Models with any control set, sorted."""
        with self._lock:
            return sorted(self._controls)

    def _change(self, model: str, edit: Callable[[ModelControl], ModelControl]) -> ModelControl:
        with self._lock:
            control = edit(self._controls.get(model, ModelControl(model)))
            updated = dict(self._controls)
            if control.is_set:
                updated[model] = control
            else:
                updated.pop(model, None)
            self._write(updated)
            self._controls = updated
            return control

    def _write(self, controls: dict[str, ModelControl]) -> None:
        document = {
            "format": _FORMAT,
            "models": {name: control_entry(c) for name, c in sorted(controls.items())},
        }
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(
                self._path, json.dumps(document, indent=2, sort_keys=True).encode("utf-8"))
        except OSError as exc:
            raise StorageError.from_os_error(
                exc, action="write the admin controls", path=self._path,
                area=FaultArea.STATE,
            ) from exc


def control_entry(control: ModelControl) -> dict[str, Any]:
    """One model's controls as JSON: ``paused``, ``pause_reason``, ``overrides``."""
    return {"paused": control.paused, "pause_reason": control.pause_reason,
            "overrides": control.overrides.as_dict()}


def control_from_entry(model: str, entry: Mapping[str, Any], source: str) -> ModelControl:
    """Inverse of :func:`control_entry`; ConfigError for overrides that do not parse,
    KeyError, TypeError or ValueError for an entry of another shape."""
    if not isinstance(entry, Mapping):
        raise TypeError(f"the entry of {model} is not an object")
    overrides = PolicyOverrides.parse(entry.get("overrides", {}), source)
    return ModelControl(model, bool(entry["paused"]), str(entry.get("pause_reason", "")),
                        overrides)


def _parse(text: str, path: Path) -> dict[str, ModelControl]:
    fix = f"move {path} aside (pauses and policy overrides set through the admin API are lost)"
    try:
        document: Any = json.loads(text)
        if document.get("format") != _FORMAT:
            raise ValueError(f"unknown format {document.get('format')!r}")
        return {str(name): control_from_entry(str(name), entry, str(path))
                for name, entry in document["models"].items()}
    except (ConfigError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StorageError(
            f"the admin controls file is not readable: {type(exc).__name__}: {exc}",
            where=str(path), fix=fix, area=FaultArea.STATE,
        ) from exc
