"""How incoming version numbers and rebuilds map onto TF Serving's version numbers.

Incoming version ``N`` is served as ``N * 1000``; each rebuild of it (new engines
for the shapes traffic has now) is served as the next number up, ``N * 1000 + 1``,
``N * 1000 + 2`` and so on, up to ``N * 1000 + 999``. So:

- a rebuild never takes a number a later incoming version will want, because
  ``N * 1000 + 999 < (N + 1) * 1000``;
- TF Serving's "newest version" order is the incoming order, and within one
  incoming version, the newest rebuild;
- the incoming version behind any served number is ``served // 1000``.

TF Serving's version numbers are int64, so incoming numbers up to
:data:`MAX_INCOMING_VERSION` (about 9.2e15: epoch seconds, milliseconds and
microseconds all fit) can be served.
"""

from __future__ import annotations

from typing import Final

from sidecar.errors import UserError

GENERATIONS: Final = 1000
"""Served numbers per incoming version: the first build and 999 rebuilds."""

MAX_INCOMING_VERSION: Final = (2**63 - 1) // GENERATIONS - 1
"""The highest incoming version number whose every generation fits in an int64."""


class VersionNumberError(UserError):
    """An incoming version number or rebuild generation cannot be given a served number."""


def served_version(incoming: int, generation: int = 0) -> int:
    """TF Serving's number for ``generation`` (0: the first build) of incoming ``incoming``."""
    if not 0 <= incoming <= MAX_INCOMING_VERSION:
        raise VersionNumberError(
            f"incoming version {incoming} is above {MAX_INCOMING_VERSION}, the highest "
            f"number the sidecar can serve ({GENERATIONS} served numbers per incoming version "
            "must fit TF Serving's int64)",
            fix="land the model under a smaller version number (epoch seconds or "
            "milliseconds work)",
        )
    if not 0 <= generation < GENERATIONS:
        raise VersionNumberError(
            f"incoming version {incoming} has been rebuilt {GENERATIONS - 1} times; no "
            "served number is left for another rebuild",
            fix="land the model again under a new incoming version number",
        )
    return incoming * GENERATIONS + generation


def next_rebuild(served: int) -> int:
    """The served number of the rebuild after ``served`` (VersionNumberError when none is left)."""
    return served_version(incoming_version(served), generation(served) + 1)


def incoming_version(served: int) -> int:
    """The incoming version a served number was built from."""
    return served // GENERATIONS


def generation(served: int) -> int:
    """0 for an incoming version's first build, 1 for its first rebuild, and so on."""
    return served % GENERATIONS


def describe(served: int) -> str:
    """``"version 3000 (incoming 3)"`` or ``"version 3002 (incoming 3, rebuild 2)"``."""
    rebuild = generation(served)
    return (f"version {served} (incoming {incoming_version(served)}"
            + (f", rebuild {rebuild})" if rebuild else ")"))
