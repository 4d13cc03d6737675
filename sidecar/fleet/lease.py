"""Leases on a key's directory in the shared store: expiry, takeover and fencing.

A key's directory holds, per *generation* ``g`` (1, 2, ...), at most:

- ``lease.<g>``: who holds generation ``g`` (replica, token, lease seconds, a renewal
  counter). Claiming ``g`` is creating this name exclusively; the holder renews by
  replacing it with the counter one higher.
- ``outcome.<g>``: how generation ``g`` ended, created exclusively, never changed:
  ``complete`` (written by the holder, last, after its artifact: the completion marker),
  ``revoked`` (written by a replica taking over an expired lease) or ``released`` (the
  holder gave the key up). One that cannot be read (not a record this sidecar writes)
  still ends ``g``, without a completion; each replica logs and counts it once.
- ``rejected.<g>``: an installer found ``g``'s completed artifact damaged (its record,
  a file against its manifest, or its model not loading) and refused it: created
  exclusively, never changed, never removed. A rejected generation is not complete for
  anyone, so the key is claimed again, as generation ``g + 1``, by exactly one replica
  (claiming is creating ``lease.<g + 1>``), and built anew. After
  :data:`MAX_REJECTIONS` refusals a key is not refused again: its artifact is kept for a
  person to look at.

**Fencing.** Both the holder's completion and a taker's revocation are the creation of
the one name ``outcome.<g>``, so exactly one of them succeeds; whichever comes second
learns it lost. A holder paused (SIGSTOP) past its lease that resumes finds ``revoked``
there and publishes nothing, however late it resumes. Generation ``g + 1`` may only be
claimed once ``outcome.<g>`` exists, and outcomes are never removed, so a replica acting
on an old listing cannot revive a generation: at any time at most the highest generation
is undecided, exactly one replica holds it, and at most one generation is ``complete``
and not rejected.

**Expiry without comparing clocks.** A lease is expired for an observer once the
observer has seen its renewal counter unchanged for the lease's own ``lease_seconds``,
measured on the observer's monotonic clock (as Kubernetes' leader election does). No
replica's wall clock is compared with another's or with the file server's, so clock skew
does not matter; what is assumed is that monotonic clocks run at about the same rate and
that the holder renews more often than its lease (every third of it). The price: a replica
that starts watching a dead holder's lease waits one full lease before taking over.

Safety rests only on exclusive creation at the server (``link()``, atomic on NFS v3/v4,
EFS, CephFS and local filesystems; see :mod:`sidecar.fleet.records`); stale attribute or
directory caches on the clients can delay a takeover, never cause two completions. An
object store implements the same with conditional writes (``If-None-Match: *``).
"""

from __future__ import annotations

import enum
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sidecar.base.errors import echo
from sidecar.fleet import records
from sidecar.fleet.errors import FleetArgumentError, FleetStoreError, LeaseLostError

LEASE_PREFIX: Final = "lease."
OUTCOME_PREFIX: Final = "outcome."
REJECTED_PREFIX: Final = "rejected."
_GENERATION: Final = re.compile(r"[1-9][0-9]{0,17}")
_LOG = logging.getLogger("sidecar.fleet")

MAX_REJECTIONS: Final = 3
"""Refusals of one key's artifacts after which it is built no more by itself: a damaged
artifact is rebuilt once; artifacts refused again and again point at a fault no rebuild
mends (a replica that cannot load what others built), which a person must look at."""

REPLICA_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
"""A replica id: it names files in the store (``shapes/<replica>.json``); pod names fit."""


class Outcome(enum.Enum):
    """How a generation ended."""

    COMPLETE = "complete"
    """Its holder completed the artifact: the key is done, for good."""

    REVOKED = "revoked"
    """Another replica took over its expired lease."""

    RELEASED = "released"
    """Its holder gave the key up (its work failed); anyone may claim it at once."""


@dataclass(frozen=True)
class Lease:
    """Generation ``generation`` of the key at ``directory``, held by this replica."""

    directory: Path
    """The key's directory in the store."""

    generation: int
    """1 for the first holder, one more for each takeover or release."""

    replica: str
    """This replica's identity."""

    lease_seconds: float
    """How long others wait, after the last renewal they saw, before taking over."""

    token: str
    """Random, so two leases of one replica (e.g. after a restart) are told apart."""

    took_over_from: str | None
    """The replica whose expired lease this one revoked, or None."""


@dataclass(frozen=True)
class Held:
    """Another replica holds the key's lease."""

    replica: str
    """Who holds it."""

    generation: int
    """Its generation."""

    retry_after: float
    """Seconds until this replica takes over if the holder renews no more."""


@dataclass(frozen=True)
class Completed:
    """The key's artifact is complete."""

    replica: str
    """The replica that completed it."""

    generation: int
    """The generation that completed it."""

    artifact: str
    """What its holder's completion names (the store's artifact directory)."""


ClaimResult = Lease | Held | Completed
"""What :meth:`LeaseBook.claim` answers."""


@dataclass(frozen=True)
class KeyListing:
    """The generations found in a key's directory."""

    leases: frozenset[int]
    outcomes: frozenset[int]
    rejected: frozenset[int] = frozenset()

    @property
    def highest(self) -> int:
        """The highest generation claimed (0: none)."""
        return max(self.leases, default=0)


def list_key(directory: Path) -> KeyListing:
    """The lease and outcome generations in ``directory`` (empty when it does not exist)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        names = []
    except OSError as exc:
        raise FleetStoreError.from_os_error(exc, action="list a key", path=directory) from exc
    return KeyListing(_generations(names, LEASE_PREFIX), _generations(names, OUTCOME_PREFIX),
                      _generations(names, REJECTED_PREFIX))


def read_outcome(
    directory: Path, generation: int, *, on_corrupt: Callable[[Path], None] | None = None
) -> tuple[Outcome, dict[str, Any]] | None:
    """How ``generation`` ended and its record; None while it has not, or when its file
    cannot be read (``on_corrupt`` is then called with its path)."""
    path = directory / f"{OUTCOME_PREFIX}{generation}"
    record = records.read(path)
    if record is not None:
        try:
            return Outcome(record.get("outcome")), record
        except ValueError:
            pass
    elif not _exists(path):  # records are created whole (link()), so one there is corrupt
        return None
    if on_corrupt is not None:
        on_corrupt(path)
    return None


class LeaseBook:
    """This replica's side of the lease protocol: claims, renewals, the fence.

    Keeps what it saw of other replicas' leases (renewal counter, when first seen on
    ``clock``) to judge expiry; one book per replica process, thread-safe.
    """

    def __init__(
        self, replica: str, lease_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if REPLICA_PATTERN.fullmatch(replica) is None:
            raise FleetArgumentError(
                f"replica id {echo(replica)} is not a name the fleet store takes",
                fix="use 1-253 ASCII letters, digits, '.', '_' or '-' (a pod name is one)")
        if not lease_seconds > 0:
            raise FleetArgumentError(f"lease seconds {echo(lease_seconds)} must be positive",
                                 fix="pass a lease of more than 0 seconds (default 30)")
        self.replica = replica
        """This replica's identity, written into its leases and outcomes."""
        self.lease_seconds = lease_seconds
        """The lease duration this replica's leases declare."""
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[Path, int], tuple[int, float]] = {}
        self._renewals: dict[str, int] = {}
        self._corrupt: set[Path] = set()

    @property
    def corrupt_outcomes(self) -> int:
        """Outcome files this book found unreadable so far, each counted once."""
        with self._lock:
            return len(self._corrupt)

    def claim(self, directory: Path) -> ClaimResult:
        """Take the key at ``directory`` if it is free or its lease expired; else say who
        holds it or that it is complete. Lost races are retried a few times.

        The directory must exist (the store creates it: :mod:`sidecar.fleet.store_root`);
        a missing one is a FleetStoreError."""
        answer: ClaimResult | None = None
        for _ in range(4):
            listing = list_key(directory)
            self._forget(directory, listing.outcomes)
            done = self.completed(directory, listing)
            if done is not None:
                return done
            current = listing.highest
            if current == 0 or current in listing.outcomes:
                lease = self._create(directory, current + 1, self._revoked_holder(directory,
                                                                                  current))
                if lease is not None:
                    return lease
                continue
            holder = records.read(directory / f"{LEASE_PREFIX}{current}") or {}
            answer = self._judge(directory, current, holder)
            if isinstance(answer, Held):
                return answer
            # Expired: revoke it. Losing this race is fine (someone else decided it).
            records.create_exclusively(directory / f"{OUTCOME_PREFIX}{current}", {
                "outcome": Outcome.REVOKED.value, "generation": current,
                "replica": self.replica, "revoked_replica": str(holder.get("replica", "?")),
            })
        return answer or Held("?", list_key(directory).highest, self.lease_seconds)

    def completed(self, directory: Path, listing: KeyListing | None = None) -> Completed | None:
        """The key's completion, or None while it is not complete (a rejected one is not)."""
        listing = listing or list_key(directory)
        for generation in sorted(listing.outcomes - listing.rejected, reverse=True):
            ended = self._read_outcome(directory, generation)
            if ended is not None and ended[0] is Outcome.COMPLETE:
                return Completed(str(ended[1].get("replica", "?")), generation,
                                 str(ended[1].get("artifact", "")))
        return None

    def reject(self, directory: Path, generation: int, reason: str) -> bool:
        """Refuse the completed ``generation`` of the key at ``directory`` for ``reason``:
        True when it is no longer complete for anyone (rejected now or before, or not
        complete at all: a key whose directory was removed is not recreated); False when
        the key has :data:`MAX_REJECTIONS` rejections already, and this one stands."""
        listing = list_key(directory)
        if generation in listing.rejected:
            return True
        ended = self._read_outcome(directory, generation)
        if ended is None or ended[0] is not Outcome.COMPLETE:
            return True
        if len(listing.rejected) >= MAX_REJECTIONS:
            return False
        # Losing this race is fine: another installer refused the same generation.
        records.create_exclusively(directory / f"{REJECTED_PREFIX}{generation}", {
            "generation": generation, "replica": self.replica, "reason": reason,
            "artifact": str(ended[1].get("artifact", "")),
            "built_by": str(ended[1].get("replica", "?"))})
        return True

    def renew(self, lease: Lease) -> None:
        """Tell the fleet this replica still works on ``lease``; LeaseLostError if it ended."""
        self.check(lease)
        with self._lock:
            renewal = self._renewals.get(lease.token, 0) + 1
            self._renewals[lease.token] = renewal
        records.replace(directory_lease(lease), _lease_record(lease, renewal))

    def check(self, lease: Lease) -> None:
        """LeaseLostError if ``lease``'s generation has ended (a cheap early check; only
        :meth:`seal` decides)."""
        ended = self._read_outcome(lease.directory, lease.generation)
        if ended is not None:
            raise _lost(lease, ended[0], ended[1])

    def seal(self, lease: Lease, outcome: Outcome, details: dict[str, Any] | None = None) -> None:
        """End ``lease`` with ``outcome`` (COMPLETE: the artifact is staged and flushed).

        The fence: this and a takeover create the same name; LeaseLostError when the
        other was first, and then nothing this replica did under the lease counts.
        """
        record = {**(details or {}), "outcome": outcome.value, "generation": lease.generation,
                  "replica": self.replica, "token": lease.token}
        if records.create_exclusively(lease.directory / f"{OUTCOME_PREFIX}{lease.generation}",
                                      record):
            with self._lock:
                self._renewals.pop(lease.token, None)
            return
        ended = self._read_outcome(lease.directory, lease.generation)
        raise _lost(lease, *(ended or (Outcome.REVOKED, {})))

    def _read_outcome(
        self, directory: Path, generation: int
    ) -> tuple[Outcome, dict[str, Any]] | None:
        return read_outcome(directory, generation, on_corrupt=self._found_corrupt)

    def _found_corrupt(self, path: Path) -> None:
        """Log and count an unreadable outcome file, once: it is read at every claim."""
        with self._lock:
            if path in self._corrupt:
                return
            self._corrupt.add(path)
        _LOG.warning(
            "fleet store: %s is no outcome record this sidecar writes (unreadable or "
            "damaged); its generation counts as ended without a completion, so the key is "
            "built again under the next one. Nothing to do; if this recurs, check the volume",
            path)

    def _revoked_holder(self, directory: Path, generation: int) -> str | None:
        """The replica whose expired lease ``generation`` was revoked; None if it was not."""
        ended = self._read_outcome(directory, generation) if generation else None
        if ended is None or ended[0] is not Outcome.REVOKED:
            return None
        return str(ended[1].get("revoked_replica", "?"))

    def _create(self, directory: Path, generation: int, took_over_from: str | None) -> Lease | None:
        lease = Lease(directory, generation, self.replica, self.lease_seconds,
                      secrets.token_hex(8), took_over_from)
        if records.create_exclusively(directory_lease(lease), _lease_record(lease, 0)):
            return lease
        return None

    def _forget(self, directory: Path, ended: frozenset[int]) -> None:
        """Drop what was seen of generations that ended (they are never judged again)."""
        with self._lock:
            for generation in ended:
                self._seen.pop((directory, generation), None)

    def _judge(self, directory: Path, generation: int, holder: dict[str, Any]) -> Held | None:
        """Held while the holder's renewals move; None once they stood still a lease long."""
        renewal = holder.get("renewal", -1)
        seconds = holder.get("lease_seconds", self.lease_seconds)
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            seconds = self.lease_seconds
        now = self._clock()
        with self._lock:
            seen = self._seen.get((directory, generation))
            if seen is None or seen[0] != renewal:
                seen = (renewal if isinstance(renewal, int) else -1, now)
                self._seen[(directory, generation)] = seen
        waited = now - seen[1]
        if waited >= seconds:
            return None
        return Held(str(holder.get("replica", "?")), generation, seconds - waited)


def directory_lease(lease: Lease) -> Path:
    """The file of ``lease``'s generation."""
    return lease.directory / f"{LEASE_PREFIX}{lease.generation}"


def _lease_record(lease: Lease, renewal: int) -> dict[str, Any]:
    return {"replica": lease.replica, "generation": lease.generation, "token": lease.token,
            "lease_seconds": lease.lease_seconds, "renewal": renewal}


def _lost(lease: Lease, outcome: Outcome, record: dict[str, Any]) -> LeaseLostError:
    by = record.get("replica", "?")
    how = {Outcome.REVOKED: f"was taken over by replica {by!r} after it expired",
           Outcome.COMPLETE: f"already ended: replica {by!r} completed it",
           Outcome.RELEASED: "was already released"}[outcome]
    return LeaseLostError(
        f"replica {lease.replica!r}'s lease (generation {lease.generation}) {how}; "
        "its work on the key is discarded",
        where=str(lease.directory),
        fix="nothing to do: install the key's artifact once it is complete; renew more often "
            "than the lease (or lengthen --lease-seconds) if this happens without a pause",
    )


def _generations(names: list[str], prefix: str) -> frozenset[int]:
    found = (name[len(prefix):] for name in names if name.startswith(prefix))
    return frozenset(int(rest) for rest in found if _GENERATION.fullmatch(rest))


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError as exc:
        raise FleetStoreError.from_os_error(exc, action=f"look for {path.name}", path=path) from exc
