"""What the service reports: what start-up found and did (:class:`StartReport`), and
everything it has done since (:class:`RunSummary`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sidecar.jobs import JobResult
from sidecar.state import JobState, RecoveryReport


@dataclass(frozen=True)
class StartReport:
    """What start-up found and did."""

    leftovers_removed: tuple[Path, ...]
    """Stale staging directories and config temp files deleted."""

    recovery: RecoveryReport
    """Interrupted jobs completed, restarted or skipped."""

    withdrawn: tuple[tuple[str, int], ...]
    """Published versions withdrawn because their source left incoming."""


@dataclass
class RunSummary:
    """Everything the service has done so far (each ``SidecarService.run`` adds to it)."""

    start: StartReport | None = None
    """The start-up report (None if start-up had already run)."""

    results: list[JobResult] = field(default_factory=list)
    """Each job's result, in the order they ran."""

    withdrawn: list[tuple[str, int]] = field(default_factory=list)
    """Versions withdrawn from serving because they vanished from incoming."""

    retired: list[tuple[str, int]] = field(default_factory=list)
    """Versions removed by retention."""

    @property
    def failed(self) -> list[JobResult]:
        """The jobs whose last result is FAILED (a failure a retry made good is not)."""
        last = {(r.model, r.version): r for r in self.results}
        return [r for r in last.values() if r.state is JobState.FAILED]
