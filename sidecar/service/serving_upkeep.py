"""Keeping the serving base tidy for the service: withdrawing and restoring versions,
retention, and TF Serving's model config. Every failure here is logged, never raised:
serving goes on with what is in place."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from pathlib import Path

from sidecar.base.errors import OnlyServableVersionError, SidecarError
from sidecar.config import Settings
from sidecar.publish import VersionPublisher, apply_retention, restore_withdrawn, withdraw_version
from sidecar.tfserving import layout
from sidecar.tfserving.model_config import ModelConfigWriter

_LOG = logging.getLogger("sidecar.service")


class ServingUpkeep:
    """Withdraws, restores and retires versions, and rewrites the model config.

    ``on_retired`` is told (model, version) of each version retention removes;
    ``served_first(model)`` lists the model's originals that were served first (the
    journal's), which retention keeps as their converted form's rollback target.
    """

    def __init__(
        self, settings: Settings, publisher: VersionPublisher, *,
        on_retired: Callable[[str, int], None],
        served_first: Callable[[str], Collection[int]] = lambda model: (),
    ) -> None:
        self._served_first = served_first
        self._settings = settings
        self._publisher = publisher
        self._config_writer = ModelConfigWriter(settings.paths.model_config_file,
                                                settings.paths.serving_base)
        self._on_retired = on_retired

    def clean_leftovers(self) -> list[Path]:
        """Delete the model config's stale temporary files (at start)."""
        return self._config_writer.clean_leftovers()

    def withdraw(self, model: str, version: int) -> bool:
        """Move ``version`` aside (``.withdrawn-<version>``); True if it was in view."""
        try:
            kept = withdraw_version(self._publisher.model_dir(model), version)
        except OnlyServableVersionError as exc:
            _LOG.warning("%s", exc)
            return False
        except SidecarError as exc:
            _LOG.error("could not withdraw %s/%s: %s", model, version, exc)
            return False
        if kept is None:
            return False
        _LOG.warning("%s/%s left incoming; withdrawn from serving and kept as %s (rename it "
                     "back to serve it again)", model, version, kept)
        return True

    def is_withdrawn(self, model: str, version: int) -> bool:
        """Whether ``version`` is kept aside as withdrawn."""
        return (self._publisher.model_dir(model) / f"{layout.WITHDRAWN_PREFIX}{version}").is_dir()

    def restore(self, model: str, version: int) -> bool:
        """Rename a withdrawn ``version`` back into view; True if it was. One that retention
        would remove at once stays withdrawn (kept, not deleted)."""
        keep = self._settings.policy_for(model).keep_versions
        newer = [v for v in self._publisher.published_versions(model) if v > version]
        if len(newer) >= keep:
            _LOG.info("%s/%s is back in incoming but stays withdrawn: retention keeps the "
                      "newest %d version(s) %s", model, version, keep, newer)
            return False
        try:
            restored = restore_withdrawn(self._publisher.model_dir(model), version)
        except SidecarError as exc:
            _LOG.error("could not restore %s/%s: %s", model, version, exc)
            return False
        if restored is not None:
            _LOG.info("%s/%s is back in incoming unchanged; restored to serving", model, version)
        return restored is not None

    def retain(self, model: str) -> None:
        """Apply the model's ``keep_versions``."""
        keep = self._settings.policy_for(model).keep_versions
        try:
            retired = apply_retention(self._publisher.model_dir(model), keep,
                                      served_first=self._served_first(model))
        except SidecarError as exc:
            _LOG.error("retention for %s failed: %s", model, exc)
            return
        for version in retired:
            _LOG.info("%s/%s retired (keeping the newest %d)", model, version, keep)
            self._on_retired(model, version)

    def write_model_config(self) -> None:
        """Rewrite TF Serving's model config if the published models changed."""
        try:
            if self._config_writer.write(self._publisher.models()):
                _LOG.info("model config %s rewritten", self._config_writer.path)
        except SidecarError as exc:
            _LOG.error("%s", exc)
