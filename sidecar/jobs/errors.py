"""Why a version job stopped: each a :class:`~sidecar.base.errors.SidecarError` naming the model
version, what went wrong and what to do.

The job turns each into a recorded ending: a model TF Serving could not load is
FAILED, a converted model that does not match the original falls back to the
original, a version that vanished, is already served or is too old to keep is SKIPPED,
and a version whose files changed under its job starts again.
"""

from __future__ import annotations

from typing import ClassVar

from converter import ConverterError
from sidecar.base.errors import SidecarError, StorageError, UserError, VersionAlreadyPublishedError


class ModelLoadError(UserError):
    """A SavedModel does not load through the TF1 Session loader (TF Serving's path)."""


class SignatureError(UserError):
    """A SavedModel has no usable signature under the name the job converts."""


class ModelCheckError(SidecarError):
    """A check the job runs on a model failed: an outcome the job acts on itself (it
    publishes the original, or fails the version), neither a setting or request a person
    got wrong nor a bug; retrying unchanged gives the same result."""


class ReplayError(ModelCheckError):
    """The replay inputs do not run on the original model in a TF1 Session."""


class VerificationError(ModelCheckError):
    """The converted model's outputs differ from the original's beyond the tolerance."""


class SourceMovedError(SidecarError):
    """The version's directory in incoming moved under its job: an outcome the job acts on
    itself (it skips the version, or starts again), neither a setting or input a person got
    wrong (removing or replacing a version is allowed) nor a bug."""


class VersionVanishedError(SourceMovedError):
    """The version was removed from the incoming base before or while its job ran: the job
    is SKIPPED. Not retryable: trying again finds it gone again (landed again, it is
    discovered anew)."""


class SourceChangedError(SourceMovedError):
    """The version's files changed while its job ran (replaced, rewritten or renamed): the
    job's work is abandoned and it starts again once the version settles. Retryable: the
    next attempt reads the settled content."""

    retryable: ClassVar[bool] = True


class VersionTooOldError(UserError):
    """The version is older than the newest ``keep_versions`` published ones, so retention
    would remove it as soon as it was published: the job is SKIPPED."""


class RolledBackError(UserError):
    """The fleet rolled this version back: no replica builds or installs it again."""

    def __init__(self, named: str, source: str) -> None:
        super().__init__(
            f"{named} was rolled back fleet-wide, so it is neither built nor installed here",
            where=source,
            fix="land the model again under a new version number, or delete the rollback's "
                "record from the fleet store's rollbacks/ to serve it again")


class OriginalOutOfViewError(UserError):
    """The original served first of a version was taken out of serving (rolled back or
    withdrawn) before its converted form was published: the converted form is not
    published either (SKIPPED), so a rejected model never comes back converted."""

    def __init__(self, named: str, original: str, source: str) -> None:
        super().__init__(
            f"{named} is the converted form of {original}, whose original was served first "
            "and has since been rolled back or withdrawn, so it is not published either",
            where=source,
            fix="land the model again under a new version number to serve it again")


class StaleArtifactError(UserError):
    """The fleet store's artifact of a version was built from other content than the
    incoming version holds now (it was replaced after the fleet built it)."""

    def __init__(self, named: str, source: str, built_by: str) -> None:
        super().__init__(
            f"{named} in incoming is not the content replica {built_by!r} built the fleet "
            "store's artifact from (it was replaced after the fleet built it); a completed "
            "artifact is never rebuilt",
            where=source,
            fix="land the new content under a new version number (a version's content "
                "must not change once it is published)")


ENDS_THE_ATTEMPT = (StorageError, VersionVanishedError, VersionAlreadyPublishedError,
                    SourceChangedError)
"""Errors that end a job's attempt as they are: never a reason to publish the original."""

FAILS_ON_PURPOSE = (ConverterError, SidecarError)
"""Errors the converter and the job raise on purpose, each saying what was wrong: a
conversion step failing with one publishes the original as planned. Any other error is a
bug, logged with its traceback and counted (``tftrt_sidecar_internal_errors``)."""
