"""TEST-ONLY: ``tftrt-sidecar`` with all its components that waits at one named step, so a
test can change the world mid-job and then let it go on.

Run as ``python -m tests.support.gated_sidecar GATE_DIR STEP N run [flags...]``. The N-th
time the pipeline passes STEP (a job or publish step such as ``job-building``), it creates
``GATE_DIR/paused`` and waits until ``GATE_DIR/resume`` exists. The wait comes in through
the service's ``checkpoint`` component, so production code has no test hook.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sidecar import cli
from sidecar.config import Settings
from sidecar.service.wiring import Seams, ServiceParts, build_service
from tests.support.waiting import HELD_SECONDS, wait_until


def main(argv: list[str] | None = None) -> int:
    """Run ``tftrt-sidecar`` with the arguments after N, waiting at the N-th STEP."""
    args = list(sys.argv[1:] if argv is None else argv)
    gate, step, nth, rest = Path(args[0]), args[1], int(args[2]), args[3:]
    passed = 0

    def wait_at_step(name: str) -> None:
        nonlocal passed
        if name != step:
            return
        passed += 1
        if passed == nth:
            (gate / "paused").touch()
            wait_until((gate / "resume").exists, HELD_SECONDS, str(gate / "resume"))

    def components(settings: Settings) -> ServiceParts:
        return build_service(settings, Seams(checkpoint=wait_at_step))

    return cli.main(rest, components=components)


if __name__ == "__main__":
    sys.exit(main())
