"""Which waiting job runs next: the journal's DISCOVERED jobs are the durable queue."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from sidecar.state import Job, JobJournal, JobState


def next_in_turn(pending: Sequence[Job], last_model: str | None) -> Job | None:
    """The job to run next among ``pending`` (DISCOVERED) jobs.

    Within a model the newest version goes first: it is the one TF Serving will
    serve, and older ones may no longer be worth converting by their turn. Models
    take turns, in the order their oldest waiting job was discovered, starting
    after ``last_model``, so a model landing many versions cannot starve others.
    """
    newest: dict[str, Job] = {}
    oldest_wait: dict[str, float] = {}
    for job in pending:
        if job.model not in newest or job.version > newest[job.model].version:
            newest[job.model] = job
        oldest_wait[job.model] = min(oldest_wait.get(job.model, job.created_at), job.created_at)
    if not newest:
        return None
    models = sorted(newest, key=lambda model: (oldest_wait[model], model))
    if last_model in models and len(models) > 1:
        turn = models.index(last_model) + 1
        models = models[turn:] + models[:turn]
    return newest[models[0]]


class JobQueue:
    """Hands out DISCOVERED jobs one at a time (one build at a time on this device)."""

    def __init__(self, journal: JobJournal) -> None:
        self._journal = journal
        self._last_model: str | None = None

    def pending(self) -> list[Job]:
        """Every job waiting for its turn, newest versions first."""
        return self._journal.jobs([JobState.DISCOVERED])

    def take(
        self, paused: Callable[[str], bool] = lambda model: False,
        held: Collection[tuple[str, int]] = (),
    ) -> Job | None:
        """The job to run now (see :func:`next_in_turn`), or None when none waits;
        jobs of `paused` models and `held` (model, version) jobs wait (they stay
        DISCOVERED)."""
        waiting = [job for job in self.pending()
                   if not paused(job.model) and (job.model, job.version) not in held]
        job = next_in_turn(waiting, self._last_model)
        if job is not None:
            self._last_model = job.model
        return job
