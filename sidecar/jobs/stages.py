"""A job's journaled state and its timed stages.

Each state change goes into the journal before the work of that state starts, so
recovery after a crash knows where the job was; each stage (converting, building,
verifying) is timed and told to the observer as it starts and ends.
"""

from __future__ import annotations

from sidecar.jobs.dependencies import JobDependencies
from sidecar.jobs.observer import StageOutcome
from sidecar.state import JobState


class JobStages:
    """The journal state and the running stage of one (model, version) job."""

    def __init__(self, deps: JobDependencies, model: str, version: int) -> None:
        self._deps = deps
        self._model = model
        self._version = version
        self._state = JobState.DISCOVERED
        self._stage: JobState | None = None
        self._stage_started = 0.0

    @property
    def state(self) -> JobState:
        """The state the journal holds for the job."""
        return self._state

    def enter(self, state: JobState) -> None:
        """End the running stage (OK), journal ``state`` and start timing it."""
        self.finish(StageOutcome.OK)
        self._journal(state)
        self._stage, self._stage_started = state, self._deps.clock()
        self._deps.observer.stage_started(self._model, self._version, state)
        self._deps.checkpoint(f"job-{state.value}")

    def finish(self, outcome: StageOutcome) -> None:
        """End the running stage, if one runs, with ``outcome``."""
        if self._stage is None:
            return
        seconds = self._deps.clock() - self._stage_started
        stage, self._stage = self._stage, None
        self._deps.observer.stage_finished(self._model, self._version, stage, seconds, outcome)

    def published(self) -> None:
        """The version is in the serving base: end the stage and journal PUBLISHED."""
        self.finish(StageOutcome.OK)
        self._journal(JobState.PUBLISHED)

    def end(self, state: JobState, reason: str, retry_after: float | None = None) -> None:
        """End the job FAILED or SKIPPED with ``reason`` (a FAILED one retried by itself
        after ``retry_after`` seconds, when given)."""
        self.finish(StageOutcome.SKIPPED if state is JobState.SKIPPED else StageOutcome.FAILED)
        self._deps.journal.advance(self._model, self._version, state, reason=reason,
                                   retry_after=retry_after)
        self._state = state

    def restart(self, reason: str) -> None:
        """Abandon the running attempt: the job goes back to DISCOVERED."""
        self.finish(StageOutcome.ABANDONED)
        if self._state is not JobState.DISCOVERED:
            self._deps.journal.restart(self._model, self._version, reason=reason)
            self._state = JobState.DISCOVERED

    def _journal(self, state: JobState) -> None:
        if self._state is not state:
            self._deps.journal.advance(self._model, self._version, state)
            self._state = state
