"""The job journal on real sqlite files: transitions, timings, restart recovery, no republish."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.base.errors import JournalError, StorageError
from sidecar.state import (
    JOURNAL_FILE_NAME,
    Flavour,
    JobJournal,
    JobState,
    recover_interrupted_jobs,
)
from tests.support.clock import ManualClock
from tests.support.disks import immutable


@pytest.fixture
def journal(tmp_path: Path, clock: ManualClock) -> Iterator[JobJournal]:
    with JobJournal.open(tmp_path / "state", clock=clock) as opened:
        yield opened


def run_to_verifying(journal: JobJournal, clock: ManualClock, model: str, version: int) -> None:
    journal.discover(model, version)
    for state in (JobState.CONVERTING, JobState.BUILDING, JobState.VERIFYING):
        clock.advance(1)
        journal.advance(model, version, state)


def test_database_is_sqlite_in_wal_mode(journal: JobJournal, tmp_path: Path) -> None:
    assert journal.path == tmp_path / "state" / JOURNAL_FILE_NAME
    with sqlite3.connect(journal.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_full_run_records_states_flavour_and_stage_timings(
    journal: JobJournal, clock: ManualClock
) -> None:
    job, new = journal.discover("resnet", 3)
    assert new and job.state is JobState.DISCOVERED and job.attempts == 1
    clock.advance(2)
    journal.advance("resnet", 3, JobState.CONVERTING)
    clock.advance(30)
    journal.advance("resnet", 3, JobState.BUILDING)
    clock.advance(60)
    journal.advance("resnet", 3, JobState.VERIFYING)
    clock.advance(5)
    journal.choose_flavour("resnet", 3, Flavour.ORIGINAL, why="max abs error 0.2 > 1e-3")
    done = journal.advance("resnet", 3, JobState.PUBLISHED)
    assert done.state is JobState.PUBLISHED
    assert done.flavour is Flavour.ORIGINAL
    assert done.flavour_reason == "max abs error 0.2 > 1e-3"
    assert journal.stage_timings("resnet", 3) == {
        JobState.DISCOVERED: 2.0, JobState.CONVERTING: 30.0,
        JobState.BUILDING: 60.0, JobState.VERIFYING: 5.0,
    }
    assert [t.to_state for t in journal.history("resnet", 3)] == [
        JobState.DISCOVERED, JobState.CONVERTING, JobState.BUILDING,
        JobState.VERIFYING, JobState.PUBLISHED,
    ]
    assert journal.published_versions("resnet") == [3]


def test_failed_and_skipped_keep_their_reason(journal: JobJournal) -> None:
    journal.discover("m", 1)
    journal.advance("m", 1, JobState.CONVERTING)
    failed = journal.advance("m", 1, JobState.FAILED, reason="converter raised ValueError: x")
    assert failed.reason == "converter raised ValueError: x"
    journal.discover("m", 2)
    skipped = journal.advance("m", 2, JobState.SKIPPED, reason="vanished from incoming")
    assert skipped.state is JobState.SKIPPED
    assert [j.version for j in journal.jobs([JobState.FAILED, JobState.SKIPPED])] == [2, 1]


@pytest.mark.parametrize(
    ("steps", "target", "message"),
    [
        ([], JobState.PUBLISHED, "cannot move from discovered to published"),
        ([JobState.CONVERTING], JobState.CONVERTING, "from converting to converting"),
        ([JobState.VERIFYING], JobState.BUILDING, "from verifying to building"),
        ([JobState.VERIFYING], JobState.PUBLISHED, "no flavour"),
        ([], JobState.FAILED, "needs a reason"),
        ([], JobState.SKIPPED, "needs a reason"),
    ],
)
def test_forbidden_transitions_raise(
    journal: JobJournal, steps: list[JobState], target: JobState, message: str
) -> None:
    journal.discover("m", 1)
    for state in steps:
        journal.advance("m", 1, state)
    before = journal.get("m", 1)
    with pytest.raises(JournalError, match=message):
        journal.advance("m", 1, target)
    assert journal.get("m", 1) == before


def test_unknown_job_and_flavour_rules(journal: JobJournal) -> None:
    with pytest.raises(JournalError, match="no job for m/9"):
        journal.advance("m", 9, JobState.CONVERTING)
    journal.discover("m", 1)
    with pytest.raises(JournalError, match="not verifying"):
        journal.choose_flavour("m", 1, Flavour.CONVERTED)
    journal.advance("m", 1, JobState.VERIFYING)
    with pytest.raises(JournalError, match="needs a reason"):
        journal.choose_flavour("m", 1, Flavour.ORIGINAL)


def test_published_version_is_never_republished(journal: JobJournal, clock: ManualClock) -> None:
    run_to_verifying(journal, clock, "m", 4)
    journal.choose_flavour("m", 4, Flavour.CONVERTED)
    published = journal.advance("m", 4, JobState.PUBLISHED)
    again, new = journal.discover("m", 4)
    assert not new and again == published
    for target in JobState:
        with pytest.raises(JournalError):
            journal.advance("m", 4, target, reason="try")
    with pytest.raises(JournalError, match="only unfinished, failed or skipped"):
        journal.restart("m", 4, reason="again")
    with sqlite3.connect(journal.path) as db, pytest.raises(sqlite3.IntegrityError, match="final"):
        db.execute("UPDATE jobs SET state = 'discovered' WHERE model = 'm' AND version = 4")
    assert journal.get("m", 4) == published


def test_state_survives_reopen_and_interrupted_jobs_are_reported(
    tmp_path: Path, clock: ManualClock
) -> None:
    state_dir = tmp_path / "state"
    with JobJournal.open(state_dir, clock=clock) as first:
        first.discover("m", 1)
        first.advance("m", 1, JobState.CONVERTING)
        first.discover("m", 2)
        run_to_verifying(first, clock, "m", 3)
        first.discover("m", 5)
        first.advance("m", 5, JobState.BUILDING)
    with JobJournal.open(state_dir, clock=clock) as second:
        assert [(j.version, j.state) for j in second.interrupted()] == [
            (5, JobState.BUILDING), (3, JobState.VERIFYING), (1, JobState.CONVERTING),
        ]
        assert [j.version for j in second.jobs([JobState.DISCOVERED])] == [2]


def test_recovery_completes_restarts_or_skips(journal: JobJournal, clock: ManualClock) -> None:
    run_to_verifying(journal, clock, "m", 1)  # renamed into place, then crashed
    journal.choose_flavour("m", 1, Flavour.CONVERTED)
    run_to_verifying(journal, clock, "m", 2)  # crashed before the rename
    journal.choose_flavour("m", 2, Flavour.CONVERTED)
    run_to_verifying(journal, clock, "m", 3)  # number present, but not ours
    journal.discover("m", 4)
    journal.advance("m", 4, JobState.CONVERTING)  # crashed while converting
    in_serving = {("m", 1), ("m", 3)}

    report = recover_interrupted_jobs(journal, is_in_serving=lambda m, v: (m, v) in in_serving)

    assert [(j.version, j.state) for j in report.completed] == [(1, JobState.PUBLISHED)]
    assert [(j.version, j.attempts) for j in report.restarted] == [(4, 2), (2, 2)]
    assert all(j.state is JobState.DISCOVERED and j.flavour is None for j in report.restarted)
    restarted = journal.get("m", 2)
    assert restarted is not None
    assert "stopped while the job was verifying" in (restarted.reason or "")
    assert [(j.version, j.state) for j in report.skipped] == [(3, JobState.SKIPPED)]
    assert "never overwritten" in (report.skipped[0].reason or "")
    assert journal.interrupted() == []
    history = journal.history("m", 2)
    assert history[-1].from_state is JobState.VERIFYING
    assert history[-1].to_state is JobState.DISCOVERED
    assert journal.stage_timings("m", 2) == {}  # the new attempt has not left DISCOVERED


def test_two_connections_cannot_both_take_a_job(tmp_path: Path, clock: ManualClock) -> None:
    with (
        JobJournal.open(tmp_path, clock=clock) as one,
        JobJournal.open(tmp_path, clock=clock) as other,
    ):
        one.discover("m", 1)
        one.advance("m", 1, JobState.CONVERTING)
        with pytest.raises(JournalError, match="from converting to converting"):
            other.advance("m", 1, JobState.CONVERTING)


def test_unwritable_state_dir_is_a_clear_storage_error(tmp_path: Path, clock: ManualClock) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    with immutable(state_dir), pytest.raises(StorageError) as caught:
        JobJournal.open(state_dir, clock=clock)
    message = str(caught.value)
    assert "could not open the job journal" in message
    assert str(state_dir) in message
    assert "Fix:" in message


def test_a_retryable_failure_comes_due_after_its_delay(
    journal: JobJournal, clock: ManualClock
) -> None:
    journal.discover("m", 1000)
    journal.discover("m", 2000)
    journal.advance("m", 1000, JobState.FAILED, reason="disk full", retry_after=30.0)
    journal.advance("m", 2000, JobState.FAILED, reason="not a SavedModel")  # not retried
    assert journal.due_retries() == []
    clock.advance(30.0)
    [due] = journal.due_retries()
    assert (due.version, due.retry_at) == (1000, clock.now)
    restarted = journal.restart("m", 1000, reason="retried")
    assert restarted.retry_at is None and restarted.attempts == 2
    assert journal.due_retries() == []
    with pytest.raises(JournalError, match="only a failed job is retried"):
        journal.advance("m", 1000, JobState.SKIPPED, reason="x", retry_after=1.0)


def test_a_journal_written_before_retries_and_fingerprints_opens_and_gains_them(
    tmp_path: Path, clock: ManualClock
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with sqlite3.connect(state / JOURNAL_FILE_NAME) as old:
        old.executescript(
            "CREATE TABLE jobs (model TEXT NOT NULL, version INTEGER NOT NULL, state TEXT NOT "
            "NULL, reason TEXT, flavour TEXT, flavour_reason TEXT, attempts INTEGER NOT NULL, "
            "created_at REAL NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (model, version));"
            "INSERT INTO jobs VALUES ('m', 1000, 'failed', 'disk full', NULL, NULL, 1, 1, 1);")
    with JobJournal.open(state, clock=clock) as journal:
        job = journal.get("m", 1000)
        assert job is not None and job.state is JobState.FAILED
        assert (job.retry_at, job.source_fingerprint) == (None, None)
        journal.discover("m", 2000)
        journal.advance("m", 2000, JobState.FAILED, reason="disk full", retry_after=0.0)
        assert [j.version for j in journal.due_retries()] == [2000]


def run_original_first_to_verifying(journal: JobJournal, clock: ManualClock) -> None:
    """Job 1000 vets its original and chooses to publish it first, converted as 1001."""
    journal.discover("m", 1000)
    for state in (JobState.CONVERTING, JobState.VERIFYING):
        clock.advance(1)
        journal.advance("m", 1000, state)
    journal.choose_flavour("m", 1000, Flavour.ORIGINAL, why="served first", converted_as=1001)


def test_publishing_an_original_served_first_queues_its_conversion_in_one_step(
    journal: JobJournal, clock: ManualClock
) -> None:
    run_original_first_to_verifying(journal, clock)
    assert journal.get("m", 1001) is None  # nothing is queued before the original is served
    journal.advance("m", 1000, JobState.PUBLISHED)
    conversion = journal.get("m", 1001)
    assert conversion is not None and conversion.state is JobState.DISCOVERED
    assert "converted form of version 1000" in (conversion.reason or "")
    original = journal.served_first("m", 1001)
    assert original is not None and original.version == 1000 and original.converted_as == 1001
    assert journal.served_first("m", 1000) is None
    assert journal.originals_served_first("m") == [1000]


def test_recovery_of_an_original_renamed_before_the_crash_queues_its_conversion(
    journal: JobJournal, clock: ManualClock
) -> None:
    run_original_first_to_verifying(journal, clock)
    # SIGKILL after the rename, before PUBLISHED was journaled: recovery finishes it.
    report = recover_interrupted_jobs(journal, is_in_serving=lambda model, version: True)
    assert [job.version for job in report.completed] == [1000]
    conversion = journal.get("m", 1001)
    assert conversion is not None and conversion.state is JobState.DISCOVERED


def test_recovery_restarts_a_conversion_interrupted_after_its_original_was_served(
    journal: JobJournal, clock: ManualClock
) -> None:
    run_original_first_to_verifying(journal, clock)
    journal.advance("m", 1000, JobState.PUBLISHED)
    for state in (JobState.CONVERTING, JobState.BUILDING):
        journal.advance("m", 1001, state)
    report = recover_interrupted_jobs(journal, is_in_serving=lambda m, v: v == 1000)
    assert [job.version for job in report.restarted] == [1001]
    assert journal.get("m", 1000).state is JobState.PUBLISHED  # type: ignore[union-attr]
    assert journal.get("m", 1001).state is JobState.DISCOVERED  # type: ignore[union-attr]
    assert journal.served_first("m", 1001) is not None  # still known as the converted form


@pytest.mark.parametrize("converted_as", [1000, 999, 2001])
def test_an_original_names_only_a_later_number_of_its_incoming_version(
    journal: JobJournal, clock: ManualClock, converted_as: int
) -> None:
    run_to_verifying(journal, clock, "m", 1000)
    with pytest.raises(JournalError, match="only an original served first"):
        journal.choose_flavour("m", 1000, Flavour.ORIGINAL, why="x", converted_as=converted_as)
    with pytest.raises(JournalError, match="only an original served first"):
        journal.choose_flavour("m", 1000, Flavour.CONVERTED, converted_as=1001)


def test_a_restarted_original_forgets_its_conversion_number(
    journal: JobJournal, clock: ManualClock
) -> None:
    run_original_first_to_verifying(journal, clock)
    journal.restart("m", 1000, reason="stopped")
    assert journal.get("m", 1000).converted_as is None  # type: ignore[union-attr]
