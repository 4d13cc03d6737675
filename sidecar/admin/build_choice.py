"""Which build a StartConversion call runs: the served number to build an incoming version
under, and whether its journal job must be restarted first (or why it cannot run now)."""

from __future__ import annotations

from collections.abc import Iterable

from sidecar.admin.errors import PreconditionError
from sidecar.state import Job, JobState, newest_build
from sidecar.tfserving import numbering


def build_to_run(jobs: Iterable[Job], model: str, incoming: int,
                 rebuild: bool) -> tuple[int, bool]:
    """The served number to build for incoming version ``incoming`` of ``model`` (whose
    journal ``jobs`` these are), and whether its job must be restarted first.

    A version never built gets its first build; one that ended failed or skipped is
    restarted when ``rebuild`` is asked; a published one gets a rebuild under its next
    served number. PreconditionError when it cannot run now.
    """
    job = newest_build(jobs, incoming)
    if job is None:
        return numbering.served_version(incoming), False
    where = f"{model}/{job.version}"
    if job.state is JobState.DISCOVERED:
        return job.version, False
    if job.state.is_intermediate:
        raise PreconditionError(
            f"model {model!r} {numbering.describe(job.version)} is {job.state.value} now",
            where=where, fix="wait for its job to finish",
        )
    if not rebuild:
        ended = ("is published; published versions are final"
                 if job.state is JobState.PUBLISHED else
                 f"ended {job.state.value} ({job.reason})")
        raise PreconditionError(
            f"model {model!r} {numbering.describe(job.version)} {ended}",
            where=where, fix="ask for a rebuild to build it again (a published version "
            "is rebuilt under its next served number)",
        )
    if job.state is JobState.PUBLISHED:
        return numbering.next_rebuild(job.version), False
    return job.version, True
