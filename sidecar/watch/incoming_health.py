"""Telling a storage fault in the incoming base from a version an operator removed.

An unmounted volume, a lazily detached mount (which leaves the empty mount point), a
renamed-away directory or a network filesystem's hiccup all make versions look gone.
So a version counts as gone only while incoming is healthy and says so: the base is
there and readable, and the version's model directory still holds some version. A
missing or unreadable base, a base that holds no version at all while served models
had some, or a served model whose directory is missing or empty, is a fault: it is
reported and waited out, and nothing is withdrawn meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from sidecar.base.errors import echo
from sidecar.watch.listing import IncomingListing, read_incoming

VersionKey = tuple[str, int]
"""(model, incoming version)."""


@dataclass(frozen=True)
class IncomingFault:
    """Part of the incoming base that cannot be trusted to say what is gone."""

    path: Path
    """The base, or one model's directory."""

    problem: str
    """What is wrong with it."""

    model: str | None
    """The model it concerns; None for the whole base."""

    def describe(self) -> str:
        """One line for logs, health and the journal: what, and what to do."""
        return (f"incoming {echo(self.path)} {self.problem}; nothing is withdrawn while "
                "it lasts and TF Serving keeps serving every published version. Fix: remount "
                "or restore it (the sidecar carries on by itself)")


@dataclass(frozen=True)
class IncomingView:
    """One look at the incoming base, judged against the versions expected there."""

    listing: IncomingListing | None
    """What the base holds; None when it could not be read at all."""

    faults: tuple[IncomingFault, ...]
    """Why some of it cannot be trusted (empty when incoming is healthy)."""

    def present(self) -> set[VersionKey]:
        """The (model, incoming version) directories found (a clash of two names for one
        version included: it is there, only not served anew)."""
        if self.listing is None:
            return set()
        return {(model, version) for model, version, _ in self.listing.versions} | set(
            self.listing.clashed)

    def is_trusted(self, model: str) -> bool:
        """Whether incoming can say that a version of ``model`` is gone."""
        return self.listing is not None and not any(
            fault.model is None or fault.model == model for fault in self.faults)

    def gone(self, expected: Collection[VersionKey]) -> list[VersionKey]:
        """The ``expected`` versions incoming says are gone (never those under a fault)."""
        present = self.present()
        return sorted(key for key in expected
                      if key not in present and self.is_trusted(key[0]))


def look_at_incoming(
    base: Path, expected: Collection[VersionKey], *, is_served: Callable[[str], bool]
) -> IncomingView:
    """Read ``base`` and judge it against ``expected`` (versions seen or published before).

    ``is_served(model)`` tells whether the serving base still serves ``model``: only a
    served model's missing or empty directory is a fault (there is something to
    protect); any other model's is a plain removal.
    """
    try:
        if not base.is_dir():
            return _unreadable(base, "is missing (unmounted, detached or renamed away?)")
        listing = read_incoming(base)
    except OSError as exc:
        return _unreadable(base, f"cannot be read ({exc.strerror or exc})")
    view = IncomingView(listing, ())
    found = {model for model, _ in view.present()}
    missing = sorted(model for model in {model for model, _ in expected} - found
                     if is_served(model))
    faults: tuple[IncomingFault, ...]
    if missing and not found:
        # Every model at once: an empty mount point, not an operator's removal.
        faults = (IncomingFault(base, "holds no model version, while served models had "
                                f"some ({', '.join(echo(m) for m in missing)})", None),)
    else:
        faults = tuple(IncomingFault(base / model, "is missing or holds no version, while "
                                     "the model is served", model) for model in missing)
    return IncomingView(listing, faults)


def _unreadable(base: Path, problem: str) -> IncomingView:
    return IncomingView(None, (IncomingFault(base, problem, None),))
