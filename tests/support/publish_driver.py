"""TEST-ONLY: a tiny job that journals and publishes one version, and can pause at a named step.

Run as ``python -m tests.support.publish_driver --serving DIR --state DIR
--model NAME --version N --source SAVED_MODEL [--pause-at STEP]``. At STEP (a
publish checkpoint name, or "journaled-verifying" / "journaled-published") it
prints ``PAUSED <STEP>`` and sleeps, so a test can SIGKILL it there. Without a
pause it runs to the end and prints ``DONE <state>``. On start it does what the
sidecar does after a restart: clean leftovers, recover interrupted jobs, and
never republish a published version.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sidecar.publish import VersionPublisher
from sidecar.state import Flavour, JobJournal, JobState, recover_interrupted_jobs


def main(argv: list[str] | None = None) -> int:
    """Run the driver; exit status 0 when the version ends published."""
    parser = argparse.ArgumentParser(prog="publish_driver")
    parser.add_argument("--serving", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", type=int, required=True)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--pause-at", default=None)
    args = parser.parse_args(argv)

    def checkpoint(step: str) -> None:
        if step == args.pause_at:
            print(f"PAUSED {step}", flush=True)
            time.sleep(3600)  # paused for good: the test kills the process here

    publisher = VersionPublisher(args.serving, checkpoint=checkpoint)
    with JobJournal.open(args.state, clock=time.time) as journal:
        publisher.clean_leftovers()
        recover_interrupted_jobs(journal, is_in_serving=publisher.is_published)
        job, _ = journal.discover(args.model, args.version)
        if job.state is JobState.DISCOVERED:
            journal.advance(args.model, args.version, JobState.CONVERTING)
            journal.advance(args.model, args.version, JobState.BUILDING)
            journal.advance(args.model, args.version, JobState.VERIFYING)
            journal.choose_flavour(args.model, args.version, Flavour.CONVERTED)
            checkpoint("journaled-verifying")
            publisher.publish_copy(args.model, args.version, args.source)
            job = journal.advance(args.model, args.version, JobState.PUBLISHED)
            checkpoint("journaled-published")
        print(f"DONE {job.state.value}", flush=True)
    return 0 if job.state is JobState.PUBLISHED else 1


if __name__ == "__main__":
    sys.exit(main())
