"""How incoming version numbers and rebuilds map onto TF Serving's version numbers.

Incoming version ``N`` is served as ``N * 1000``; each rebuild of it (new engines
for the shapes traffic has now) is served as the next number up, ``N * 1000 + 1``,
``N * 1000 + 2`` and so on, up to ``N * 1000 + 999``. So:

- a rebuild never takes a number a later incoming version will want, because
  ``N * 1000 + 999 < (N + 1) * 1000``;
- TF Serving's "newest version" order is the incoming order, and within one
  incoming version, the newest rebuild;
- the incoming version behind any served number is ``served // 1000``.

With ``serve_original_first`` (the default) a landed version is published at once as
its original, ``N * 1000``, and its converted form, once built and verified, takes over
as ``N * 1000 + 1`` (:func:`converted_form`); rebuilds follow from ``N * 1000 + 2``.
Without it, the converted form is the first build, ``N * 1000``, as before. The journal
records which number is which (``Job.converted_as``), and the admin API's GetModel
shows it (``converted_as`` on the original, ``takes_over_from`` on its converted form).

This module is the one definition of which numbers and directory names are
versions; the incoming listing, the serving base listing, the model config, the
admin API, rollback and withdrawal all ask it:

- TF Serving's version numbers are int64, so a served number is 0 to
  :data:`MAX_SERVED_VERSION` (19 digits);
- an incoming version is :data:`MIN_INCOMING_VERSION` to
  :data:`MAX_INCOMING_VERSION` (about 9.2e15, 16 digits: epoch seconds,
  milliseconds and microseconds all fit), so that its every generation fits
  an int64 (0 included: TF Serving serves a version 0);
- an incoming version directory is named as TF Serving reads one: its
  ``ParseVersionNumber`` is ``absl::SimpleAtoi`` (tensorflow/serving
  ``file_system_storage_path_source.cc``), so ``00000123`` (the layout of TF
  Serving's own test model ``saved_model_half_plus_two_tf2_cpu``) is version 123,
  as are ``123``, ``+123`` and `` 123``. Every layer keeps the name it found on
  disk; none rebuilds a path from the number. Two names for one number (``7`` and
  ``007``) are a clash the sidecar refuses, naming both and the one TF Serving
  itself would serve;
- a serving base directory name is the number written the one canonical way
  (ASCII digits, no leading zero): the sidecar writes it so, and reads no other.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Final

from sidecar.base.errors import UserError, echo

GENERATIONS: Final = 1000
"""Served numbers per incoming version: the first build and 999 rebuilds."""

MAX_SERVED_VERSION: Final = 2**63 - 1
"""The highest version number TF Serving can read (int64)."""

MIN_INCOMING_VERSION: Final = 0
"""The lowest incoming version number the sidecar serves."""

MAX_INCOMING_VERSION: Final = MAX_SERVED_VERSION // GENERATIONS - 1
"""The highest incoming version number whose every generation fits in an int64."""

_SIMPLE_ATOI: Final = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)[ \t\n\v\f\r]*")
"""What ``absl::SimpleAtoi`` reads as a base-10 number: ASCII whitespace around an
optional sign and ASCII digits (``absl::ascii_isspace``; no ``0x``, no Unicode digits)."""

_CANONICAL: Final = re.compile(r"0|[1-9][0-9]*")
"""A number written the one way the sidecar writes it into the serving base."""

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
    """Whether the directory name ``name`` is spelled as TF Serving reads a version
    (``absl::SimpleAtoi``: ``7``, ``007``, ``+7``), whether or not its number fits."""
    return _SIMPLE_ATOI.fullmatch(name) is not None


def served_version_from_name(name: str) -> int | None:
    """The served number a serving base directory name stands for; None when TF Serving
    would not read it as one, or the sidecar never writes it so (a leading zero, a sign)."""
    if _CANONICAL.fullmatch(name) is None or len(name) > len(str(MAX_SERVED_VERSION)):
        return None
    number = int(name)
    return number if number <= MAX_SERVED_VERSION else None


def incoming_version_from_name(name: str) -> int:
    """The incoming version a directory name stands for, read as TF Serving reads it
    (``0007`` is 7).

    VersionNumberError when it is no version name, or its number is out of range.
    """
    spelled = _SIMPLE_ATOI.fullmatch(name)
    if spelled is None:
        raise VersionNumberError(
            f"{echo(name)} is not a version number", fix="name version directories 1, 2, ..."
        )
    sign, digits = spelled.groups()
    if len(digits.lstrip("0")) > len(str(MAX_SERVED_VERSION)):
        # int() of thousands of digits is slow (and refused past 4,300); it is too big anyway.
        raise VersionNumberError(
            f"incoming version {echo(name)} has more digits than TF Serving's int64 holds",
            fix=_RANGE_FIX,
        )
    return check_incoming_version(-int(digits) if sign == "-" else int(digits))


def tf_serving_choice(names: Iterable[str]) -> str:
    """Which of several directory names for one version TF Serving serves: it indexes a
    model's children by version in sorted (bytewise) order and the last name wins
    (``IndexChildrenByVersion``, logging "Duplicate version directories detected")."""
    return max(names, key=os.fsencode)


def clash_error(names: Iterable[str], version: int) -> VersionNumberError:
    """Why the sidecar serves none of ``names``, directory names that all stand for
    incoming ``version``: what TF Serving would do instead, and the fix."""
    spelled = sorted(names, key=os.fsencode)
    listed = ", ".join(echo(name) for name in spelled[:-1]) + f" and {echo(spelled[-1])}"
    chosen = tf_serving_choice(spelled)
    return VersionNumberError(
        f"version directories {listed} {'both' if len(spelled) == 2 else 'all'} stand for "
        f"version {version} (TF Serving reads a version name as a number); TF Serving itself "
        f"would serve {echo(chosen)} (the name that sorts last) and ignore the "
        f"other{'' if len(spelled) == 2 else 's'}, so the sidecar serves none of them rather "
        "than guess which one is meant",
        fix=f"remove or renumber all but one of {listed}",
    )


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


def converted_form(original: int) -> int:
    """The served number the converted form of an original served first, at ``original``,
    takes over as: the next one up, within the same incoming version."""
    return next_rebuild(original)


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

