"""How incoming version numbers and rebuilds map onto TF Serving's version numbers.

Incoming version ``N`` is served as ``N * 1000``; each rebuild of it (new engines
for the shapes traffic has now) is served as the next number up, ``N * 1000 + 1``,
``N * 1000 + 2`` and so on, up to ``N * 1000 + 999``. So:

- a rebuild never takes a number a later incoming version will want, because
  ``N * 1000 + 999 < (N + 1) * 1000``;
- TF Serving's "newest version" order is the incoming order, and within one
  incoming version, the newest rebuild;
- the incoming version behind any served number is ``served // 1000``.

This module is the one definition of which numbers and directory names are
versions; the incoming listing, the serving base listing, the model config, the
admin API, rollback and withdrawal all ask it:

- TF Serving's version numbers are int64, so a served number is 0 to
  :data:`MAX_SERVED_VERSION` (19 digits);
- an incoming version is :data:`MIN_INCOMING_VERSION` to
  :data:`MAX_INCOMING_VERSION` (about 9.2e15, 16 digits: epoch seconds,
  milliseconds and microseconds all fit), so that its every generation fits
  an int64 (0 included: TF Serving serves a version 0);
- a version directory name is its number written the one canonical way
  (ASCII digits, no leading zero). TF Serving takes any all-digit name as a
  version, so ``7`` and ``007`` would be the same version 7 under two paths;
  the sidecar refuses the padded spelling instead of guessing which one is
  meant, and every layer can then derive the path from the number.
"""

from __future__ import annotations

import re
from typing import Final

from sidecar.errors import UserError, echo

GENERATIONS: Final = 1000
"""Served numbers per incoming version: the first build and 999 rebuilds."""

MAX_SERVED_VERSION: Final = 2**63 - 1
"""The highest version number TF Serving can read (int64)."""

MIN_INCOMING_VERSION: Final = 0
"""The lowest incoming version number the sidecar serves."""

MAX_INCOMING_VERSION: Final = MAX_SERVED_VERSION // GENERATIONS - 1
"""The highest incoming version number whose every generation fits in an int64."""

_ALL_DIGITS: Final = re.compile(r"[0-9]+")

_RANGE_FIX: Final = (
    f"land the model under a version number from {MIN_INCOMING_VERSION} to "
    f"{MAX_INCOMING_VERSION} (epoch seconds, milliseconds and microseconds fit)"
)


class VersionNumberError(UserError):
    """An incoming version number or rebuild generation cannot be given a served number."""


def check_incoming_version(incoming: int) -> int:
    """``incoming`` if the sidecar can serve it; VersionNumberError saying why not."""
    if not MIN_INCOMING_VERSION <= incoming <= MAX_INCOMING_VERSION:
        raise VersionNumberError(
            f"incoming version {echo(incoming)} is outside {MIN_INCOMING_VERSION} to "
            f"{MAX_INCOMING_VERSION}, the numbers the sidecar can serve ({GENERATIONS} served "
            "numbers per incoming version must fit TF Serving's int64)",
            fix=_RANGE_FIX,
        )
    return incoming


def is_version_name(name: str) -> bool:
    """Whether TF Serving would take the directory name ``name`` for a version (all digits)."""
    return _ALL_DIGITS.fullmatch(name) is not None


def served_version_from_name(name: str) -> int | None:
    """The served number a serving base directory name stands for; None when TF Serving
    would not read it as one, or the sidecar never writes it so (a leading zero)."""
    if (not is_version_name(name) or (len(name) > 1 and name.startswith("0"))
            or len(name) > len(str(MAX_SERVED_VERSION))):
        return None
    number = int(name)
    return number if number <= MAX_SERVED_VERSION else None


def incoming_version_from_name(name: str) -> int:
    """The incoming version an all-digit directory name stands for.

    VersionNumberError when it is not written canonically or out of range.
    """
    if not is_version_name(name):
        raise VersionNumberError(
            f"{echo(name)} is not a version number", fix="name version directories 1, 2, ..."
        )
    if len(name.lstrip("0")) > len(str(MAX_SERVED_VERSION)):
        # int() of thousands of digits is slow (and refused past 4,300); it is too big anyway.
        raise VersionNumberError(
            f"incoming version {echo(name)} has more digits than TF Serving's int64 holds",
            fix=_RANGE_FIX,
        )
    number = int(name)
    if name != str(number):
        raise VersionNumberError(
            f"version directory {echo(name)} has a leading zero; the sidecar reads a version "
            "directory only under its number's one spelling, so that two names "
            f"('{number}' and {echo(name)}) never claim the same version {number}",
            fix=f"rename it to {number} (if {number} exists too, remove one of them)",
        )
    return check_incoming_version(number)


def served_version(incoming: int, generation: int = 0) -> int:
    """TF Serving's number for ``generation`` (0: the first build) of incoming ``incoming``."""
    check_incoming_version(incoming)
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

