"""What a job per (model, version) is: its states, the allowed transitions, its record."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from sidecar.tfserving import numbering


class JobState(enum.Enum):
    """Where a version is in the pipeline."""

    DISCOVERED = "discovered"
    """Seen complete in the incoming base; waiting for its turn."""

    CONVERTING = "converting"
    """Being loaded and converted."""

    BUILDING = "building"
    """Engines being built for the replayed shapes."""

    VERIFYING = "verifying"
    """Being compared with the original, then saved, warmed up and published."""

    PUBLISHED = "published"
    """In the serving base under its version number. Final."""

    FAILED = "failed"
    """Stopped with a reason; restarted by hand, or by itself after a backoff when the
    reason can pass (a storage fault: ``Job.retry_at``)."""

    SKIPPED = "skipped"
    """Deliberately not published (e.g. the version number was already served)."""

    @property
    def is_intermediate(self) -> bool:
        """True while a worker owns the job (a crash leaves it here)."""
        return self in _INTERMEDIATE


_INTERMEDIATE: Final = frozenset({JobState.CONVERTING, JobState.BUILDING, JobState.VERIFYING})

_ENDINGS: Final = frozenset({JobState.FAILED, JobState.SKIPPED})

ALLOWED_TRANSITIONS: Final = MappingProxyType(
    {
        JobState.DISCOVERED: frozenset(
            {JobState.CONVERTING, JobState.BUILDING, JobState.VERIFYING} | _ENDINGS
        ),
        JobState.CONVERTING: frozenset({JobState.BUILDING, JobState.VERIFYING} | _ENDINGS),
        JobState.BUILDING: frozenset({JobState.VERIFYING} | _ENDINGS),
        JobState.VERIFYING: frozenset({JobState.PUBLISHED} | _ENDINGS),
        JobState.PUBLISHED: frozenset(),
        JobState.FAILED: frozenset(),
        JobState.SKIPPED: frozenset(),
    }
)
"""Forward moves only; back to DISCOVERED goes through ``JobJournal.restart``."""


class Flavour(enum.Enum):
    """Which model a published version is."""

    CONVERTED = "converted"
    """The converted model with its engines."""

    ORIGINAL = "original"
    """The original model, unconverted; ``flavour_reason`` says why."""


@dataclass(frozen=True)
class Job:
    """The journal's record of one (model, version)."""

    model: str
    """Model name."""

    version: int
    """The version number it is served under (see :mod:`sidecar.tfserving.numbering`)."""

    state: JobState
    """Current state."""

    reason: str | None
    """Why it failed, was skipped, restarted or (for a rebuild) queued; None otherwise."""

    flavour: Flavour | None
    """What was (or is being) published; None before the choice is made."""

    flavour_reason: str | None
    """Why the original was published instead of the converted model."""

    attempts: int
    """1 for the first run; each restart adds one."""

    created_at: float
    """When it was discovered (clock seconds)."""

    updated_at: float
    """When its state last changed (clock seconds)."""

    retry_at: float | None = None
    """For a FAILED job that failed for a reason that can pass (storage): when the service
    restarts it (clock seconds). None: it is not retried by itself."""

    source_fingerprint: str | None = None
    """The content fingerprint of the incoming version this job published (or is about to):
    a withdrawn version is restored only when the same content comes back."""

    built_by: str | None = None
    """In a fleet: the replica that built what was published (None in single-pod mode)."""

    installed: bool = False
    """In a fleet: True when this replica installed it from the store instead of building."""

    converted_as: int | None = None
    """For an ORIGINAL served first (``serve_original_first``): the later served number of
    the same incoming version its converted form is built as; None otherwise."""

    @property
    def incoming_version(self) -> int:
        """The incoming version it is built from."""
        return numbering.incoming_version(self.version)

    @property
    def generation(self) -> int:
        """0 for the first build of its incoming version, then 1, 2, ... per rebuild."""
        return numbering.generation(self.version)


def newest_build(jobs: Iterable[Job], incoming: int) -> Job | None:
    """The job of the latest build (first build or rebuild) of incoming version ``incoming``."""
    builds = [job for job in jobs if job.incoming_version == incoming]
    return max(builds, key=lambda job: job.version) if builds else None


@dataclass(frozen=True)
class Transition:
    """One recorded state change."""

    from_state: JobState | None
    """State before (None for the first record)."""

    to_state: JobState
    """State after."""

    reason: str | None
    """Reason given with the change."""

    at: float
    """When (clock seconds)."""
