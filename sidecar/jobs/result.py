"""What one run of a version job ended with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from converter import InstallResult
from sidecar.jobs.fleet_work import FleetOrigin
from sidecar.jobs.replay import ReplayOrigin
from sidecar.jobs.verify import Comparison
from sidecar.state import Flavour, JobState


@dataclass(frozen=True)
class JobResult:
    """The final state of one (model, version) job and what was done on the way."""

    model: str
    """Model name."""

    version: int
    """Version number."""

    state: JobState
    """PUBLISHED, FAILED or SKIPPED (DISCOVERED: the job is to run again)."""

    reason: str | None = None
    """Why it failed or was skipped."""

    flavour: Flavour | None = None
    """What was published: the converted model or the original."""

    flavour_reason: str | None = None
    """Why the original was published instead of the converted model."""

    converted_as: int | None = None
    """For an original served first: the served number its converted form is built as
    (queued in the journal)."""

    published_path: Path | None = None
    """``<serving base>/<model>/<version>`` once published."""

    replay_origin: ReplayOrigin | None = None
    """Where the built, verified and warmed-up inputs came from."""

    replay_inputs: int = 0
    """How many inputs were replayed."""

    warmup_records: int = 0
    """Records in the published version's warmup file."""

    engines_kept: int = 0
    """Engines the converter kept (faster than native on this device)."""

    engines: InstallResult | None = None
    """What was installed into the engine cache, for a converted version."""

    verification: Comparison | None = None
    """The converted model against the original, when they were compared."""

    stage_seconds: Mapping[JobState, float] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Seconds spent in each state, from the journal."""

    origin: FleetOrigin | None = None
    """In a fleet, for a published version: who built it, and whether this replica
    installed it from the store."""

    retry_in: float | None = None
    """For a DISCOVERED result in a fleet: run the job again after this many seconds
    (another replica holds the key, or this one lost its lease). None: it waits for its
    source to settle again."""

    def describe(self) -> str:
        """One line: the model version, its state and the reason or flavour."""
        head = f"{self.model}/{self.version}: {self.state.value}"
        if self.state is not JobState.PUBLISHED:
            return f"{head} ({self.reason})"
        text = f"{head} {self.flavour.value if self.flavour else '?'} at {self.published_path}"
        if self.flavour_reason:
            text += f" because {self.flavour_reason}"
        if self.engines is not None:
            text += (f"; {self.engines_kept} engine(s) kept, {self.engines.installed} file(s) "
                     f"installed in {self.engines.directory}")
        return text
