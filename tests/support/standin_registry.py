"""Which model versions the TF Serving stand-in has, in which state (test-only).

Polls each model's base path like TF Serving's file-system storage path source: new
numeric versions are loaded and warmed up before they become AVAILABLE; versions the
policy no longer wants are unloaded after their successor is available.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from tensorflow_serving.apis import model_pb2

from tests.support.standin_config import ModelConfig, numeric_versions
from tests.support.standin_errors import StandinError, invalid_argument, not_found
from tests.support.standin_servable import LoadedVersion

_log = logging.getLogger("tfserving_standin")


class VersionState(enum.IntEnum):
    """TF Serving's `ModelVersionStatus.State` values."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass
class VersionEntry:
    """One version of one model and what happened to it."""

    version: int
    state: VersionState = VersionState.START
    servable: LoadedVersion | None = None
    error: StandinError | None = None
    warmup_records: int = 0


@dataclass
class ModelEntry:
    """A configured model and its versions."""

    config: ModelConfig
    versions: dict[int, VersionEntry] = field(default_factory=dict)


class ModelRegistry:
    """Models by name; `poll()` brings them in line with the config and the disk."""

    def __init__(self, read_config: Callable[[], list[ModelConfig] | None]) -> None:
        """`read_config` returns the models to serve, or None to keep the current ones."""
        self._read_config = read_config
        self._models: dict[str, ModelEntry] = {}
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._override: list[ModelConfig] | None = None

    # -- polling -----------------------------------------------------------------------

    def replace_config(self, models: list[ModelConfig]) -> None:
        """Serve `models` from now on (HandleReloadConfigRequest) and poll right away."""
        with self._lock:
            self._override = models
        self.poll()

    def poll(self) -> None:
        """One poll: read the config, load new versions, unload unwanted ones."""
        with self._poll_lock:
            configs = self._read_config()
            with self._lock:
                if configs is None:
                    configs = self._override
                else:
                    self._override = None
                if configs is None:
                    configs = [entry.config for entry in self._models.values()]
                wanted_names = {config.name for config in configs}
                removed = [
                    entry for name, entry in self._models.items() if name not in wanted_names
                ]
                for entry in removed:
                    del self._models[entry.config.name]
                for config in configs:
                    existing = self._models.get(config.name)
                    if existing is None:
                        self._models[config.name] = ModelEntry(config)
                    else:
                        existing.config = config
                entries = list(self._models.values())
            for entry in removed:
                for version in list(entry.versions.values()):
                    self._unload(version)
            for entry in entries:
                self._poll_model(entry)

    def _poll_model(self, entry: ModelEntry) -> None:
        wanted = entry.config.wanted_versions(numeric_versions(entry.config.base_path))
        for number in sorted(wanted):
            with self._lock:
                known = entry.versions.get(number)
                # Failed versions stay failed; unloaded ones load again when wanted again.
                if known is not None and (
                    known.state != VersionState.END or known.error is not None
                ):
                    continue
                version = entry.versions[number] = VersionEntry(number, VersionState.LOADING)
            self._load(entry.config, version)
        with self._lock:
            # Availability-preserving, like TF Serving: an old version is unloaded only once
            # a wanted one is available (or nothing is wanted any more).
            successor_ready = not wanted or any(
                version.state == VersionState.AVAILABLE
                for number, version in entry.versions.items()
                if number in wanted
            )
            unwanted = [
                version
                for number, version in entry.versions.items()
                if number not in wanted and version.state == VersionState.AVAILABLE
            ]
            if not successor_ready:
                unwanted = []
        for version in unwanted:
            self._unload(version)

    def _load(self, config: ModelConfig, version: VersionEntry) -> None:
        path = config.base_path / str(version.version)
        servable: LoadedVersion | None = None
        try:
            servable = LoadedVersion(config.name, version.version, path)
            records = servable.run_warmup(path)
        except Exception as error:
            if servable is not None:
                servable.close()
            reason = error if isinstance(error, StandinError) else invalid_argument(str(error))
            _log.warning("loading %s version %d failed: %s", config.name, version.version, error)
            with self._lock:
                version.error, version.state = reason, VersionState.END
            return
        with self._lock:
            version.servable, version.warmup_records = servable, records
            version.state = VersionState.AVAILABLE
        _log.info(
            "%s version %d available after %d warmup records",
            config.name,
            version.version,
            records,
        )

    def _unload(self, version: VersionEntry) -> None:
        with self._lock:
            servable, version.servable = version.servable, None
            version.state = VersionState.UNLOADING
        if servable is not None:
            servable.close()
        with self._lock:
            version.state = VersionState.END

    def unload_all(self) -> None:
        """Close every session (at shutdown)."""
        with self._lock:
            versions = [v for entry in self._models.values() for v in entry.versions.values()]
        for version in versions:
            self._unload(version)

    # -- lookups -----------------------------------------------------------------------

    def servable_for(self, spec: model_pb2.ModelSpec) -> LoadedVersion:
        """The version a request's ModelSpec names: the given version, the labelled one,
        or the newest available one."""
        choice = spec.WhichOneof("version_choice")
        with self._lock:
            entry = self._models.get(spec.name)
            if choice == "version_label":
                if entry is None or spec.version_label not in entry.config.labels:
                    raise invalid_argument(
                        f"Unrecognized servable version label: {spec.version_label}"
                    )
                number: int | None = entry.config.labels[spec.version_label]
            elif choice == "version":
                number = spec.version.value
            else:
                number = None
            available = (
                {}
                if entry is None
                else {
                    n: v.servable
                    for n, v in entry.versions.items()
                    if v.state == VersionState.AVAILABLE and v.servable is not None
                }
            )
        if number is None:
            if not available:
                raise not_found(f"Servable not found for request: Latest({spec.name})")
            return available[max(available)]
        servable = available.get(number)
        if servable is None:
            raise not_found(f"Servable not found for request: Specific({spec.name}, {number})")
        return servable

    def version_entries(self, name: str) -> list[VersionEntry]:
        """Copies of every known version of `name`, newest first (empty if unknown)."""
        with self._lock:
            entry = self._models.get(name)
            if entry is None:
                return []
            return [
                VersionEntry(v.version, v.state, None, v.error, v.warmup_records)
                for _, v in sorted(entry.versions.items(), reverse=True)
            ]
