"""A fleet's per-model controls (pause, policy overrides): one record per model in the store.

A change made through any replica's admin API becomes the model's record through a
conditional write (:meth:`~sidecar.fleet.operator_records.OperatorRecordStore.set_control`):
when another replica changed the model since this change read it, the change is made again
on the newer record, so a pause through one replica and a policy set through another at the
same moment both hold. Every replica's service reads the record.

The service asks :meth:`~sidecar.state.controls.Controls.is_paused` and
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

from sidecar.base.errors import ConcurrentChangeError, ConfigError
from sidecar.fleet.errors import FleetError, StoreFormatError
from sidecar.fleet.operator_records import ControlRecord, OperatorRecordStore
from sidecar.state.controls import Controls, ModelControl, control_entry, control_from_entry

FORMAT: Final = 1
"""The control record's format number."""

DEFAULT_REFRESH_SECONDS: Final = 2.0
"""How old a copy of a model's record may be before it is read again."""

CHANGE_ATTEMPTS: Final = 5
"""How many times a change is made on a record other replicas keep changing meanwhile."""

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
            control = self._parse(model, self._records.control(model))
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

    def _change(self, model: str, edit: Callable[[ModelControl], ModelControl]) -> ModelControl:
        with self._lock:  # this replica's own changes of a model do not race each other
            for _ in range(CHANGE_ATTEMPTS):
                found = self._records.control(model)
                try:
                    current = self._parse(model, found)
                except StoreFormatError as error:  # a change replaces what cannot be read
                    _LOG.error("%s; it is replaced by this change", error)
                    current = ModelControl(model)
                control = edit(current)
                record = {"format": FORMAT, **control_entry(control)}
                if self._records.set_control(
                        model, record, replacing=0 if found is None else found.generation):
                    self._keep(self._monotonic(), control)
                    return control
                _LOG.info("the controls of %s were changed through another replica while "
                          "this change was made; it is made again on theirs", model)
        raise ConcurrentChangeError(
            f"the controls of {model} were changed through other replicas each of the "
            f"{CHANGE_ATTEMPTS} times this change was about to be made; nothing was changed",
            where=f"the fleet store's controls of {model}",
            fix="make the change again once the other changes are done")

    def _parse(self, model: str, found: ControlRecord | None) -> ModelControl:
        if found is None:
            return ModelControl(model)
        record = found.record
        where = f"the fleet store's controls of {model} (generation {found.generation})"
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

