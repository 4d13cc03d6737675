"""TEST-ONLY: ``tftrt-sidecar`` whose fleet replica builds for a forced device slug, so one
machine can stand for replicas on two device models.

Run as ``python -m tests.fleet.slug_sidecar SLUG run [flags...]`` (with ``--store``). The
slug comes in through the service's fleet feature, so production code has no hook.
"""

from __future__ import annotations

import dataclasses
import sys

from sidecar import cli
from sidecar.config import Settings
from sidecar.service.wiring import ServiceParts, build_features, build_parts


def main(argv: list[str] | None = None) -> int:
    """Run ``tftrt-sidecar`` with the arguments after SLUG, its fleet keys under SLUG."""
    args = list(sys.argv[1:] if argv is None else argv)
    slug, rest = args[0], args[1:]

    def components(settings: Settings) -> ServiceParts:
        features = build_features(settings)
        assert features.fleet is not None, "pass --store"
        context = dataclasses.replace(features.fleet.context, slug=slug)
        fleet = dataclasses.replace(features.fleet, context=context)
        return build_parts(settings, features=dataclasses.replace(features, fleet=fleet))

    return cli.main(rest, components=components)


if __name__ == "__main__":
    sys.exit(main())
