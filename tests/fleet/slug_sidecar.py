"""TEST-ONLY: ``tftrt-sidecar`` whose fleet replica builds for a forced device slug, so one
machine can stand for replicas on two device models.

Run as ``python -m tests.fleet.slug_sidecar SLUG run [flags...]`` (with ``--store``). The
slug comes in through the service's ``fleet`` component, so production code has no hook.
"""

from __future__ import annotations

import dataclasses
import sys

from sidecar import cli
from sidecar.config import Settings
from sidecar.service.wiring import ServiceComponents, build_components


def main(argv: list[str] | None = None) -> int:
    """Run ``tftrt-sidecar`` with the arguments after SLUG, its fleet keys under SLUG."""
    args = list(sys.argv[1:] if argv is None else argv)
    slug, rest = args[0], args[1:]

    def components(settings: Settings) -> ServiceComponents:
        built = build_components(settings)
        assert built.fleet is not None, "pass --store"
        return dataclasses.replace(built, fleet=dataclasses.replace(built.fleet, slug=slug))

    return cli.main(rest, components=components)


if __name__ == "__main__":
    sys.exit(main())
