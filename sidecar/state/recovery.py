"""After a restart: settle the jobs a crash left in an intermediate state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sidecar.state.jobs import Job, JobState
from sidecar.state.journal import JobJournal


@dataclass(frozen=True)
class RecoveryReport:
    """What :func:`recover_interrupted_jobs` did."""

    completed: tuple[Job, ...]
    """Verifying jobs whose version was already renamed into place: now PUBLISHED."""

    restarted: tuple[Job, ...]
    """Jobs sent back to DISCOVERED to run again from the start."""

    skipped: tuple[Job, ...]
    """Jobs whose version number is in the serving base without this job having published it."""


def recover_interrupted_jobs(
    journal: JobJournal, *, is_in_serving: Callable[[str, int], bool],
    cause: str = "the sidecar stopped",
) -> RecoveryReport:
    """Resolve every converting, building or verifying job left by a stopped process.

    ``is_in_serving(model, version)`` tells whether the numeric version directory
    exists in the serving base. The rename is the publish's commit point and the
    flavour is journaled before it, so: a verifying job with a flavour whose
    version exists was published (finish the record); a version that exists
    without a flavour came from elsewhere (skip, never overwrite); anything else
    restarts. Call it before any worker starts, after stale staging is cleaned, or
    when no job runs after a storage fault broke one (``cause`` says why it stopped).
    """
    completed: list[Job] = []
    restarted: list[Job] = []
    skipped: list[Job] = []
    for job in journal.interrupted():
        present = is_in_serving(job.model, job.version)
        if present and job.state is JobState.VERIFYING and job.flavour is not None:
            completed.append(journal.advance(job.model, job.version, JobState.PUBLISHED))
        elif present:
            skipped.append(
                journal.advance(
                    job.model,
                    job.version,
                    JobState.SKIPPED,
                    reason="the version number is already in the serving base; "
                    "published versions are never overwritten",
                )
            )
        else:
            restarted.append(
                journal.restart(
                    job.model,
                    job.version,
                    reason=f"{cause} while the job was {job.state.value}",
                )
            )
    return RecoveryReport(tuple(completed), tuple(restarted), tuple(skipped))
