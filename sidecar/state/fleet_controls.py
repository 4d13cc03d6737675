"""A fleet's per-model controls (pause, policy overrides): one record per model in the store.

A change made through any replica's admin API replaces the model's record
(:meth:`~sidecar.fleet.operator_records.OperatorRecordStore.set_control`); every replica's
service reads it. The service asks :meth:`~sidecar.state.controls.Controls.is_paused` and
:meth:`~sidecar.state.controls.Controls.policy_for` several times a second, so a model's
record is read again only when the copy in hand is ``refresh_seconds`` old: another
replica's change is seen within that (plus the volume's own attribute caching, on NFS),
and the replica that made the change sees it at once.

A record that cannot be read (the volume failed, or it is no controls record) leaves the
last one read in force (the defaults, if none was), and is logged once until a read
succeeds again: the service goes on, and the conversions' own store calls report the
fault. Changes are never made on a stale copy: they start from a fresh read, and fail
with the store's error (nothing changes, here or in the store) when the store refuses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from sidecar.errors import ConfigError
from sidecar.fleet.errors import FleetError, StoreFormatError
from sidecar.fleet.operator_records import OperatorRecordStore
from sidecar.state.controls import Controls, ModelControl, control_entry, control_from_entry

FORMAT: Final = 1
"""The control record's format number."""

DEFAULT_REFRESH_SECONDS: Final = 2.0
"""How old a copy of a model's record may be before it is read again."""

_LOG = logging.getLogger(__name__)


class FleetControls(Controls):
    """The :class:`~sidecar.state.controls.Controls` of a fleet, in ``records`` (the store).

    ``monotonic`` times the copies (seconds; tests pass their own clock).
    """

    def __init__(
        self, records: OperatorRecordStore, *, refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._records = records
        self._refresh_seconds = refresh_seconds
        self._monotonic = monotonic
        self._copies: dict[str, tuple[float, ModelControl]] = {}
        self._copies_lock = threading.Lock()
        self._failing: set[str] = set()

    def get(self, model: str) -> ModelControl:
        """The model's controls as last read from the store (read again when the copy is
        ``refresh_seconds`` old)."""
        now = self._monotonic()
        with self._copies_lock:
            copy = self._copies.get(model)
        if copy is not None and now - copy[0] < self._refresh_seconds:
            return copy[1]
        try:
            control = self._read(model)
        except FleetError as error:
            control = copy[1] if copy is not None else ModelControl(model)
            self._log_failure(model, error, control)
        else:
            with self._copies_lock:
                self._failing.discard(model)
        self._keep(now, control)
        return control

    def models(self) -> list[str]:
        """Models with a pause or an override in the store, sorted."""
        return [model for model in self._records.controlled_models() if self.get(model).is_set]

    def _current(self, model: str) -> ModelControl:
        try:
            return self._read(model)
        except StoreFormatError as error:  # a change replaces what cannot be read
            _LOG.error("%s; it is replaced by this change", error)
            return ModelControl(model)

    def _store(self, control: ModelControl) -> ModelControl:
        self._records.set_control(control.model, {"format": FORMAT, **control_entry(control)})
        self._keep(self._monotonic(), control)
        return control

    def _read(self, model: str) -> ModelControl:
        record = self._records.control(model)
        if record is None:
            return ModelControl(model)
        where = f"the fleet store's controls of {model}"
        try:
            if record.get("format") != FORMAT:
                raise ValueError(f"unknown format {record.get('format')!r}")
            return control_from_entry(model, record, where)
        except (ConfigError, ValueError, KeyError, TypeError) as exc:
            raise StoreFormatError(
                f"the controls record of {model} is not readable: {type(exc).__name__}: {exc}",
                where=where, fix=f"set its controls again (tftrt-sidecar admin pause/resume/"
                f"policy {model}): that replaces the record") from exc

    def _keep(self, now: float, control: ModelControl) -> None:
        with self._copies_lock:
            self._copies[control.model] = (now, control)

    def _log_failure(self, model: str, error: FleetError, kept: ModelControl) -> None:
        with self._copies_lock:
            first = model not in self._failing
            self._failing.add(model)
        if first:
            _LOG.error("%s; %s keeps the controls read before (paused: %s, overrides: %s) "
                       "until the store answers", error, model, kept.paused,
                       kept.overrides.as_dict())

