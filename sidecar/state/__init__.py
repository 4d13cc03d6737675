"""Durable sidecar state: the job journal (sqlite3, WAL), recovery after a restart, and the
per-model controls set through the admin API (:mod:`sidecar.state.controls`)."""

from __future__ import annotations

from sidecar.state.jobs import (
    ALLOWED_TRANSITIONS,
    Flavour,
    Job,
    JobState,
    Transition,
    newest_build,
)
from sidecar.state.journal import JOURNAL_FILE_NAME, JobJournal
from sidecar.state.recovery import RecoveryReport, recover_interrupted_jobs

__all__ = [
    "ALLOWED_TRANSITIONS",
    "JOURNAL_FILE_NAME",
    "Flavour",
    "Job",
    "JobJournal",
    "JobState",
    "RecoveryReport",
    "Transition",
    "newest_build",
    "recover_interrupted_jobs",
]
