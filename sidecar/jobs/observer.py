"""What a job tells the outside world as it runs: stages started and finished, results.

Metrics (Prometheus), logs and the admin API implement :class:`JobObserver`;
the job only calls it, so they plug in without changing the job.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, Protocol

from sidecar.state import JobState

if TYPE_CHECKING:
    from sidecar.jobs.result import JobResult

_LOG = logging.getLogger("sidecar.jobs")


class StageOutcome(enum.Enum):
    """How a stage ended."""

    OK = "ok"
    """It did what it set out to do."""

    FELL_BACK = "fell-back"
    """Conversion or verification failed; the job went on to publish the original."""

    FAILED = "failed"
    """The job ended FAILED in this stage."""

    SKIPPED = "skipped"
    """The job ended SKIPPED in this stage."""

    INTERRUPTED = "interrupted"
    """The process was asked to stop (the job resumes after a restart)."""

    ABANDONED = "abandoned"
    """The version's content changed under the job; it starts again once it settles."""


class JobObserver(Protocol):
    """Receives a job's progress; every method must return quickly and never raise."""

    def stage_started(self, model: str, version: int, stage: JobState) -> None:
        """The job entered ``stage`` (converting, building or verifying)."""
        ...

    def stage_finished(
        self, model: str, version: int, stage: JobState, seconds: float, outcome: StageOutcome
    ) -> None:
        """The job left ``stage`` after ``seconds`` with ``outcome``."""
        ...

    def job_finished(self, result: JobResult) -> None:
        """The job reached a final state (published, failed or skipped)."""
        ...

    def internal_error(self, model: str, version: int, stage: JobState) -> None:
        """The job met a bug (an error nothing raises on purpose) in ``stage``; the job
        logged it with its traceback and published the original or ended FAILED."""
        ...


class LoggingJobObserver:
    """Logs each stage and result to the ``sidecar.jobs`` logger."""

    def stage_started(self, model: str, version: int, stage: JobState) -> None:
        """Log the stage at INFO."""
        _LOG.info("%s/%s: %s", model, version, stage.value)

    def stage_finished(
        self, model: str, version: int, stage: JobState, seconds: float, outcome: StageOutcome
    ) -> None:
        """Log the stage's duration and outcome at INFO."""
        _LOG.info("%s/%s: %s %s in %.2f s", model, version, stage.value, outcome.value, seconds)

    def job_finished(self, result: JobResult) -> None:
        """Log the result at INFO (WARNING when it failed)."""
        level = logging.WARNING if result.state is JobState.FAILED else logging.INFO
        _LOG.log(level, "%s", result.describe())

    def internal_error(self, model: str, version: int, stage: JobState) -> None:
        """Nothing more to log: the job logged the error with its traceback."""
