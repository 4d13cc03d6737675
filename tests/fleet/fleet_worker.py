"""A replica's side of the fleet store in its own process, for the lease tests.

``python -m tests.fleet.fleet_worker STORE REPLICA LEASE_SECONDS SOURCE [--go F] [--hold-at
STAGE --resume F] [--until-decided]``: waits for the file ``--go`` (so racing workers start
together), claims the test key once (with ``--until-decided``, again while another replica
holds it, until it is this one's or complete), and if it won, renews while it works and
completes the key with the version tree ``SOURCE``; at ``--hold-at`` (``claimed`` or
``artifact-staged``) it waits for the file ``--resume`` first. Every step is one JSON line
on stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sidecar.fleet import (
    Completed,
    FleetKey,
    Held,
    LeaseBook,
    LeaseKeeper,
    LeaseLostError,
    SharedDirectoryStore,
)
from tests.support.waiting import HELD_SECONDS, wait_until

KEY = FleetKey("mlp", 3000, "2.21.0", "cpu-test")
"""The key every worker races for."""


def _say(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _wait_for(path: Path | None) -> None:
    # Every millisecond: the workers race for the key as soon as the test lets them go.
    if path is not None:
        wait_until(path.exists, HELD_SECONDS, str(path), interval=0.001)


def main() -> None:
    """Run one worker (see the module docstring)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("store", type=Path)
    parser.add_argument("replica")
    parser.add_argument("lease_seconds", type=float)
    parser.add_argument("source", type=Path)
    parser.add_argument("--go", type=Path)
    parser.add_argument("--hold-at", default="")
    parser.add_argument("--resume", type=Path)
    parser.add_argument("--until-decided", action="store_true")
    args = parser.parse_args()

    def hold(stage: str) -> None:
        if stage == args.hold_at:
            _say("holding", stage=stage)
            _wait_for(args.resume)
            _say("resumed", stage=stage)

    book = LeaseBook(args.replica, args.lease_seconds)
    store = SharedDirectoryStore(args.store, book, checkpoint=hold)
    _say("ready")
    _wait_for(args.go)
    if args.until_decided:
        claim = wait_until(lambda: store.claim(KEY), HELD_SECONDS, f"{KEY} decided",
                           done=lambda again: not isinstance(again, Held),
                           interval=args.lease_seconds / 20)
    else:
        claim = store.claim(KEY)
    if isinstance(claim, Held):
        _say("held", by=claim.replica)
        return
    if isinstance(claim, Completed):
        _say("completed-by", by=claim.replica)
        return
    _say("claimed", generation=claim.generation)
    with LeaseKeeper(store, claim):
        hold("claimed")
        try:
            store.complete(KEY, claim, args.source, flavour="converted", reason=None)
        except LeaseLostError as exc:
            _say("lost", message=str(exc))
            return
    _say("completed")


if __name__ == "__main__":
    main()
