"""TEST-ONLY: ``tftrt-sidecar`` that pauses at one named step, so a test can SIGKILL it there.

Run as ``python -m tests.support.pausing_sidecar STEP run [flags...]``. At STEP (a
job step such as ``job-building`` or ``job-flavour-chosen``, or a publish step
such as ``renamed``) it prints ``PAUSED STEP`` and sleeps. The pause comes in
through the service's ``checkpoint`` component, so production code has no test hook.
"""

from __future__ import annotations

import sys
import time

from sidecar import cli
from sidecar.config import Settings
from sidecar.service.wiring import Seams, ServiceParts, build_parts


def main(argv: list[str] | None = None) -> int:
    """Run ``tftrt-sidecar`` with the arguments after STEP, pausing at STEP."""
    args = list(sys.argv[1:] if argv is None else argv)
    step, rest = args[0], args[1:]

    def pause_at_step(name: str) -> None:
        if name == step:
            print(f"PAUSED {name}", flush=True)
            time.sleep(3600)  # paused for good: the test kills the process here

    def components(settings: Settings) -> ServiceParts:  # the pipeline alone
        return build_parts(settings, Seams(checkpoint=pause_at_step))

    return cli.main(rest, components=components)


if __name__ == "__main__":
    sys.exit(main())
