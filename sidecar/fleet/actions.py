"""Rollbacks that apply to every replica of a fleet, through the store.

Rolling back through any replica's admin API records the version in the store
(:meth:`FleetRollbacks.record`; :mod:`sidecar.fleet.operator_records` has the layout)
before that replica moves it out of view, as a single pod does. Every replica's service
then calls :meth:`FleetRollbacks.apply` between jobs: it moves each recorded version it
has in view out of it (``.rolled-back-<served>``, as the admin rollback does), except a
model's only servable version, which it keeps serving, logs and notes in the store (and
moves once another version is there). Nothing installs or publishes a recorded version
again: the install path asks :meth:`FleetRollbacks.is_rolled_back` first.

Records are immutable, so each is read once; the store is listed at most every
``refresh_seconds``, which bounds how late another replica's rollback is applied here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sidecar.base.errors import OnlyServableVersionError
from sidecar.fleet.errors import FleetError, StoreFormatError
from sidecar.fleet.operator_records import OperatorRecordStore, RollbackRecord
from sidecar.publish import RolledBack, roll_back_version

DEFAULT_REFRESH_SECONDS: Final = 2.0
"""How often the store's rollback records are listed again, at most."""

MOVED: Final = "moved"
"""A note's outcome: the version was moved out of this replica's view."""

KEPT: Final = "kept"
"""A note's outcome: the version is this replica's only servable one and still served."""

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppliedRollback:
    """A recorded rollback that :meth:`FleetRollbacks.apply` carried out on this replica."""

    rollback: RollbackRecord
    """What the store records."""

    moved: RolledBack
    """Where the version went, and what this replica serves now."""


class FleetRollbacks:
    """This replica's side of the fleet's rollbacks: records them, applies them to the
    serving base at ``serving_base``, answers whether a version is rolled back.

    Thread-safe (the admin API records, the service applies). ``monotonic`` times the
    listings (seconds; tests pass their own clock).
    """

    def __init__(
        self, records: OperatorRecordStore, serving_base: Path, *,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._records = records
        self._serving_base = serving_base
        self._refresh_seconds = refresh_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._known: dict[str, RollbackRecord] = {}
        self._listed_at: float | None = None
        self._kept_noted: set[str] = set()
        self._listing_failed = False
        self._unreadable: set[str] = set()

    def record(self, model: str, served: int, reason: str) -> RollbackRecord:
        """Record in the store that ``served`` of ``model`` is rolled back fleet-wide, before
        this replica moves it (FleetStoreError, and nothing recorded, when the store refuses)."""
        rollback = self._records.record_rollback(model, served, reason)
        with self._lock:
            self._known[rollback.name] = rollback
        return rollback

    def note_moved(self, rollback: RollbackRecord, moved: RolledBack) -> None:
        """Note in the store that this replica moved the version out (logged, not raised,
        when the store refuses: the note is for operators, the move is done)."""
        self._note(rollback, {"outcome": MOVED, "kept_at": moved.moved_to.name,
                              "now_serving": moved.now_serving})

    def is_rolled_back(self, model: str, served: int) -> bool:
        """Whether ``served`` of ``model`` is rolled back fleet-wide (never install it).

        Answers from the records in hand, listing the store again when they are
        ``refresh_seconds`` old; a version recorded since is moved out at the next
        :meth:`apply` if it was installed meanwhile."""
        self._refresh()
        with self._lock:
            return f"{model}@{served}" in self._known

    def apply(self) -> list[AppliedRollback]:
        """Move every recorded version this replica has in view out of it; what was moved.

        Does nothing until the records are ``refresh_seconds`` old (so the service may call
        it between every two jobs). Call it from the service loop, the serving base's one
        writer, and rewrite TF Serving's model config when it moved anything. Raises
        StorageError when the serving base refuses a move (the store refusing is logged,
        not raised: the records in hand are applied).
        """
        if not self._refresh():
            return []
        with self._lock:
            known = sorted(self._known.values(), key=lambda r: r.name)
        applied = []
        for rollback in known:
            try:
                moved = roll_back_version(self._serving_base / rollback.model, rollback.served)
            except OnlyServableVersionError as refused:
                self._keep_only_version(rollback, refused)
                continue
            if moved is None:
                continue
            _LOG.warning("%s/%s rolled back here too (recorded by %s: %s); kept at %s, "
                         "serving %s now", rollback.model, rollback.served, rollback.by,
                         rollback.reason, moved.moved_to, moved.now_serving)
            self.note_moved(rollback, moved)
            applied.append(AppliedRollback(rollback, moved))
        return applied

    def _refresh(self) -> bool:
        """List the store's records again if due; True if it was listed."""
        now = self._monotonic()
        with self._lock:
            if self._listed_at is not None and now - self._listed_at < self._refresh_seconds:
                return False
            self._listed_at = now
            known = dict(self._known)
        try:
            fresh = self._read_records(known)
        except FleetError as error:
            if not self._listing_failed:
                _LOG.error("%s; the rollbacks recorded before are applied until the store "
                           "answers", error)
            self._listing_failed = True
            return True
        self._listing_failed = False
        with self._lock:
            # Dropped: a record removed from the store (an operator undoing a rollback).
            # Kept: one :meth:`record` added while the store was being listed.
            added = {name: r for name, r in self._known.items() if name not in known}
            self._known = fresh | added
        return True

    def _read_records(self, known: dict[str, RollbackRecord]) -> dict[str, RollbackRecord]:
        """Every record in the store, reading only those not in ``known`` (records never
        change); one that is no rollback record is logged once and left out."""
        fresh = {}
        for name in self._records.rollback_names():
            rollback = known.get(name)
            if rollback is None:
                try:
                    rollback = self._records.rollback(name)
                except StoreFormatError as error:
                    if name not in self._unreadable:
                        _LOG.error("%s; it is not applied", error)
                    self._unreadable.add(name)
                    continue
            if rollback is not None:
                fresh[name] = rollback
        return fresh

    def _keep_only_version(self, rollback: RollbackRecord, refused: OnlyServableVersionError
                           ) -> None:
        with self._lock:
            first = rollback.name not in self._kept_noted
            self._kept_noted.add(rollback.name)
        if first:
            _LOG.error("%s/%s is rolled back fleet-wide (by %s: %s) but is this replica's only "
                       "servable version: it stays in view until another version is published "
                       "here (%s)", rollback.model, rollback.served, rollback.by, rollback.reason,
                       refused)
            self._note(rollback, {"outcome": KEPT, "why": str(refused)})

    def _note(self, rollback: RollbackRecord, outcome: dict[str, Any]) -> None:
        try:
            self._records.note_applied(rollback, outcome)
        except FleetError as error:
            _LOG.warning("could not note in the store what the rollback of %s/%s did here: %s",
                         rollback.model, rollback.served, error)
