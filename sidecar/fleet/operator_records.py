"""What operators set through any replica's admin API, kept in the fleet store for all.

Two kinds of small JSON record (:mod:`sidecar.fleet.records`, so readers never see one
half written)::

    <store>/
      controls/<model>/<g>.json           generation <g> of the model's pause and policy
                                          overrides, with who set them and when; the
                                          highest is in force. A change creates the next
                                          generation exclusively, so of two replicas
                                          changing one model at once, one makes its change
                                          again on the other's (no change is lost); the
                                          last few generations are kept
      rollbacks/<model>@<served>.json     served version <served> of <model> is rolled back
                                          fleet-wide: by whom, when, why (created
                                          exclusively, never changed or removed)
      rollbacks/applied/<model>@<served>/<replica>.json
                                          what that rollback did on one replica: moved out
                                          of view, or kept (its only servable version)

The controls' content is the state layer's (:mod:`sidecar.state.fleet_controls` encodes
it); this module only stores it. :class:`OperatorRecordStore` is the interface, so an
object store with conditional writes could back it; :class:`OperatorRecords` is the one on
the store's shared directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn, Protocol

from sidecar.base.errors import echo
from sidecar.fleet import records
from sidecar.fleet.errors import FleetArgumentError, StoreFormatError
from sidecar.fleet.lease import REPLICA_PATTERN
from sidecar.fleet.store_root import StoreRoot
from sidecar.tfserving import numbering
from sidecar.tfserving.model_names import model_name_problem

CONTROLS_DIR: Final = "controls"
"""``controls/<model>/<g>.json``: the generations of one model's pause and policy overrides."""

KEPT_GENERATIONS: Final = 4
"""How many of a model's newest control generations a change leaves in the store."""

ROLLBACKS_DIR: Final = "rollbacks"
"""``rollbacks/<model>@<served>.json``: one version rolled back fleet-wide."""

APPLIED_DIR: Final = "applied"
"""``rollbacks/applied/<model>@<served>/<replica>.json``: what a rollback did on a replica."""

_ROLLBACK_NAME: Final = re.compile(r"(?P<model>[^@/]+)@(?P<served>[0-9]+)\.json")
_GENERATION_NAME: Final = re.compile(r"(?P<generation>[1-9][0-9]{0,17})\.json")

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControlRecord:
    """One generation of a model's control record."""

    generation: int
    """1 for the first record set, one more with each change."""

    record: dict[str, Any]
    """What it holds; empty when its file is no JSON object (it cannot be read)."""


@dataclass(frozen=True)
class RollbackRecord:
    """Served version ``served`` of ``model`` is rolled back on every replica."""

    model: str
    """The model's name."""

    served: int
    """TF Serving's version number that was rolled back."""

    by: str
    """The replica whose admin API was called."""

    at: float
    """When, in seconds since the epoch (that replica's clock)."""

    reason: str
    """Why, as recorded."""

    def to_json(self) -> dict[str, Any]:
        """The record as its file holds it."""
        return {"model": self.model, "served": self.served, "by": self.by, "at": self.at,
                "reason": self.reason}

    @classmethod
    def from_json(cls, record: Mapping[str, Any], where: str) -> RollbackRecord:
        """Inverse of :meth:`to_json`; StoreFormatError naming what is wrong."""
        try:
            rollback = cls(str(record["model"]), int(record["served"]), str(record["by"]),
                           float(record["at"]), str(record["reason"]))
            problem = model_name_problem(rollback.model)
            if problem is not None:
                raise ValueError(problem)
            return rollback
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreFormatError(
                f"rollback record is not valid: lacks or mistypes {exc}", where=where,
                fix="the record was not written by this sidecar; remove it (the version is "
                    "then no longer held back fleet-wide)") from exc

    @property
    def name(self) -> str:
        """``<model>@<served>``, the record's name in the store."""
        return f"{self.model}@{self.served}"


class OperatorRecordStore(Protocol):
    """Where a fleet keeps its operators' controls and rollbacks. Every method raises
    :class:`~sidecar.fleet.errors.FleetStoreError` when the backing storage refuses."""

    @property
    def replica(self) -> str:
        """This replica's identity."""
        ...

    def control(self, model: str) -> ControlRecord | None:
        """The model's newest control record, or None when none was ever set."""
        ...

    def set_control(self, model: str, record: Mapping[str, Any], *, replacing: int) -> bool:
        """Make ``record`` the model's control record if generation ``replacing`` (0: none)
        is still its newest, and return True; return False, changing nothing, when another
        replica changed it since (a conditional write)."""
        ...

    def controlled_models(self) -> list[str]:
        """Every model with a control record, sorted."""
        ...

    def record_rollback(self, model: str, served: int, reason: str) -> RollbackRecord:
        """Record that ``served`` of ``model`` is rolled back (by this replica, now); the
        record already there if another replica recorded it first."""
        ...

    def rollback_names(self) -> list[str]:
        """The names (:attr:`RollbackRecord.name`) of every recorded rollback, sorted."""
        ...

    def rollback(self, name: str) -> RollbackRecord | None:
        """The rollback recorded as ``name``; None when there is none (any more)."""
        ...

    def note_applied(self, rollback: RollbackRecord, outcome: Mapping[str, Any]) -> None:
        """Record what ``rollback`` did on this replica (replacing an earlier note)."""
        ...


class OperatorRecords:
    """The :class:`OperatorRecordStore` in the fleet store's directory ``root`` (opened with
    :meth:`~sidecar.fleet.store_root.StoreRoot.open`; a store whose marker went is a
    FleetStoreError, read or written, never an empty store).

    ``clock`` stamps the records (seconds since the epoch).
    """

    def __init__(self, root: Path, replica: str, clock: Callable[[], float] = time.time) -> None:
        if REPLICA_PATTERN.fullmatch(replica) is None:
            raise FleetArgumentError(
                f"replica id {echo(replica)} cannot name a file in the store",
                fix="use letters, digits, '.', '_' or '-' (a pod name fits)")
        self._root = root
        self._store_root = StoreRoot.open(root)
        self._replica = replica
        self._clock = clock

    @property
    def replica(self) -> str:
        """This replica's identity."""
        return self._replica

    def control(self, model: str) -> ControlRecord | None:
        """See :meth:`OperatorRecordStore.control`."""
        directory = self._control_dir(model)
        self._store_root.check()  # a store that went is no store without controls
        while True:
            generations = _generations(directory)
            if not generations:
                return None
            path = directory / f"{generations[-1]}.json"
            found = records.read(path)
            if found is not None or os.path.lexists(path):
                return ControlRecord(generations[-1], found or {})
            # Pruned since the listing: KEPT_GENERATIONS newer ones were made meanwhile.

    def set_control(self, model: str, record: Mapping[str, Any], *, replacing: int) -> bool:
        """See :meth:`OperatorRecordStore.set_control`; the record is stamped with this
        replica and the time (``set_by``, ``set_at``)."""
        directory = self._control_dir(model)
        generation = replacing + 1
        path = directory / f"{generation}.json"
        self._store_root.make_directory(directory)
        if not records.create_exclusively(
                path, {**record, "set_by": self._replica, "set_at": self._clock()}):
            return False
        generations = _generations(directory)
        if generations[-1] != generation:
            # Newer ones are there already: ``replacing`` may have been pruned before this
            # create (a stale change), so it is refused. (Were they made on this one, the
            # change made again on theirs changes nothing more.)
            _remove(path)
            return False
        for old in generations[:-KEPT_GENERATIONS]:
            _remove(directory / f"{old}.json")
        return True

    def controlled_models(self) -> list[str]:
        """See :meth:`OperatorRecordStore.controlled_models`."""
        self._store_root.check()
        return [model for model in records.names(self._root / CONTROLS_DIR)
                if model_name_problem(model) is None]

    def record_rollback(self, model: str, served: int, reason: str) -> RollbackRecord:
        """See :meth:`OperatorRecordStore.record_rollback`."""
        _check_model(model)
        if not 0 <= served <= numbering.MAX_SERVED_VERSION:
            raise FleetArgumentError(f"rollback version {echo(served)} is not a served version",
                                     fix=f"use 0 to {numbering.MAX_SERVED_VERSION}")
        rollback = RollbackRecord(model, served, self._replica, self._clock(), reason)
        path = self._root / ROLLBACKS_DIR / f"{rollback.name}.json"
        self._store_root.make_directory(path.parent)
        if records.create_exclusively(path, rollback.to_json()):
            return rollback
        found = self.rollback(rollback.name)
        return found if found is not None else _not_a_record(path)

    def rollback_names(self) -> list[str]:
        """See :meth:`OperatorRecordStore.rollback_names` (names of other files are left out)."""
        self._store_root.check()  # a store that went is no store without rollbacks
        return [name.removesuffix(".json") for name in records.names(self._root / ROLLBACKS_DIR)
                if _ROLLBACK_NAME.fullmatch(name)]

    def rollback(self, name: str) -> RollbackRecord | None:
        """See :meth:`OperatorRecordStore.rollback`; StoreFormatError for a file that is no
        rollback record of that name."""
        if _ROLLBACK_NAME.fullmatch(f"{name}.json") is None:
            raise FleetArgumentError(f"{echo(name)} is no rollback record's name",
                                     fix="pass a name rollback_names() gave")
        path = self._root / ROLLBACKS_DIR / f"{name}.json"
        self._store_root.check()
        found = records.read(path)
        if found is None:
            return None if not path.exists() else _not_a_record(path)
        rollback = RollbackRecord.from_json(found, str(path))
        return rollback if rollback.name == name else _not_a_record(path)

    def note_applied(self, rollback: RollbackRecord, outcome: Mapping[str, Any]) -> None:
        """See :meth:`OperatorRecordStore.note_applied`; stamped with the time (``at``)."""
        path = self._root / ROLLBACKS_DIR / APPLIED_DIR / rollback.name / f"{self._replica}.json"
        self._store_root.make_directory(path.parent)
        records.replace(path, {**outcome, "replica": self._replica, "at": self._clock()})

    def _control_dir(self, model: str) -> Path:
        _check_model(model)
        return self._root / CONTROLS_DIR / model


def _check_model(model: str) -> None:
    problem = model_name_problem(model)
    if problem is not None:
        raise FleetArgumentError(f"operator record model: {problem}")


def _not_a_record(path: Path) -> NoReturn:
    raise StoreFormatError(f"{path.name} is no rollback record", where=str(path),
                           fix="remove it (and roll back again, if that was meant)")


def _generations(directory: Path) -> list[int]:
    """The control generations in ``directory``, oldest first (other names are left out)."""
    found = (_GENERATION_NAME.fullmatch(name) for name in records.names(directory))
    return sorted(int(match["generation"]) for match in found if match is not None)


def _remove(path: Path) -> None:
    """Remove an old or refused generation; one another replica removed first is gone
    already, and one that cannot be removed is only left over (logged)."""
    try:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    except OSError as exc:
        _LOG.warning("could not remove %s from the fleet store: %s", path, exc)
