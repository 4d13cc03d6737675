"""The sidecar's one error hierarchy.

Every error says what went wrong, where (field, model, version, path) and what to
do about it. Three branches tell the caller how to react:

- :class:`UserError`: configuration or input is wrong; a person must change it.
- :class:`StorageError`: the filesystem or database refused (disk full, permission
  denied, read-only, I/O error); retrying after the storage is fixed can succeed. Its
  ``area`` says which storage refused, as the service reports the fault.
- :class:`InternalError`: a bug in the sidecar; report it.

A job's checks of a model (:class:`sidecar.jobs.errors.ModelCheckError`: its replay inputs
fail, the converted model does not match) are outcomes the job acts on itself, not one of
these three. The tap's and the shape store's errors are branches of this one hierarchy too.

``retryable`` is what the service acts on: a job that fails with a retryable error
is FAILED with a retry time and restarted after a backoff (like kopf's
``TemporaryError``); one that fails with any other error stays FAILED until a
person restarts it. :func:`storage_error_in` finds the storage fault behind errors
that other libraries (TensorFlow, the converter) raise.
"""

from __future__ import annotations

import errno
import os
from pathlib import PurePath
from typing import ClassVar, Final

from sidecar.base.faults import FaultArea

ECHO_LIMIT: Final = 80
"""The most characters of a bad value an error message quotes (see :func:`echo`)."""


def echo(value: object) -> str:
    """``repr(value)`` as an error message quotes it: shortened in the middle past
    :data:`ECHO_LIMIT` characters, with the full length named; a path is quoted whole.

    Every error that quotes a value it was given goes through here, so a 10,000-character
    model name stays a short, readable message (and fits a gRPC status's metadata). A
    path cut in the middle names no file, and the filesystem bounds its length, so a
    ``PurePath`` is shown as its whole text.
    """
    if isinstance(value, PurePath):
        return repr(str(value))
    text = repr(value)
    if len(text) <= ECHO_LIMIT:
        return text
    return f"{text[:ECHO_LIMIT - 24]}...{text[-12:]} ({len(text)} characters)"


class SidecarError(Exception):
    """Base of every error the sidecar raises on purpose.

    ``what`` is the problem, ``where`` locates it, ``fix`` says what to do.
    ``retryable`` tells whether trying again later, unchanged, can succeed.
    """

    retryable: ClassVar[bool] = False
    where_word: ClassVar[str] = "at"

    def __init__(self, what: str, *, where: str = "", fix: str = "") -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        """The one-line message: what, where and how to fix."""
        text = self.what
        if self.where:
            text += f" ({self.where_word} {self.where})"
        if self.fix:
            text += f". Fix: {self.fix}"
        return text


class UserError(SidecarError):
    """Configuration or input is wrong; retrying unchanged will fail the same way."""


class StorageError(SidecarError):
    """The filesystem or the state database refused an operation.

    ``errno`` is the operating system's error number when there is one.
    """

    retryable: ClassVar[bool] = True

    area: FaultArea | None = None
    """Which storage refused, named where the error is raised (a subclass of one storage
    names it once, on the class): the service reports a step's fault under it (admin
    health, ``tftrt_sidecar_storage_fault``). None: storage outside those areas (the
    temporary directory), only logged."""

    def __init__(
        self, what: str, *, where: str = "", fix: str = "", errno_value: int | None = None,
        area: FaultArea | None = None,
    ) -> None:
        self.errno = errno_value
        if area is not None:
            self.area = area
        super().__init__(what, where=where, fix=fix)

    @classmethod
    def from_os_error(
        cls, exc: OSError, *, action: str, path: os.PathLike[str] | str,
        area: FaultArea | None = None,
    ) -> StorageError:
        """Translate ``exc``, raised while doing ``action`` on ``path`` in ``area``, into a
        clear error."""
        fix = _FIXES_BY_ERRNO.get(exc.errno or 0, "check the path and the filesystem, then retry")
        reason = exc.strerror or str(exc)
        return cls(
            f"could not {action}: {reason}",
            where=os.fspath(path),
            fix=fix.format(path=os.fspath(path)),
            errno_value=exc.errno,
            area=area,
        )


_FIXES_BY_ERRNO: dict[int, str] = {
    errno.ENOSPC: "free space on the filesystem holding {path} (or enlarge it), then retry",
    errno.EDQUOT: "raise the disk quota for the sidecar's user on {path}, then retry",
    errno.EACCES: "give the sidecar's user write permission on {path} and its parent directory",
    errno.EPERM: "make {path} writable by the sidecar (check its owner and `lsattr` flags)",
    errno.EROFS: "mount the volume holding {path} read-write for the sidecar",
    errno.EXDEV: "put the staging area and the serving base on the same filesystem",
    errno.EIO: "check the volume holding {path} (kernel log, `dmesg`; remount it), then retry",
    errno.ESTALE: "remount the network volume holding {path}, then retry",
    errno.ENOTCONN: "remount the volume holding {path} (its server or FUSE daemon went away)",
}


STORAGE_ERRNOS: frozenset[int] = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM,
    errno.ESTALE, errno.ENOTCONN,
})
"""Error numbers that mean the storage refused (not the model or the settings)."""


def storage_error_in(
    exc: BaseException, *, action: str, path: os.PathLike[str] | str,
    area: FaultArea | None = None,
) -> StorageError | None:
    """The storage fault behind ``exc`` as a StorageError, or None when there is none.

    Looks at ``exc`` and every error it was raised from: a StorageError is returned as
    it is; an OSError with one of :data:`STORAGE_ERRNOS`, or an error whose message
    carries one's text (TensorFlow reports a full disk as "... No space left on
    device"), becomes one about doing ``action`` on ``path`` (or the file it names) in
    ``area``.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageError):
            return current
        found = _storage_errno(current)
        if found is not None:
            filename = getattr(current, "filename", None) if isinstance(current, OSError) else None
            os_error = OSError(found, os.strerror(found))
            return StorageError.from_os_error(os_error, action=action, path=filename or path,
                                              area=area)
        current = current.__cause__ or current.__context__
    return None


def _storage_errno(exc: BaseException) -> int | None:
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        return exc.errno
    text = str(exc)
    return next((code for code in sorted(STORAGE_ERRNOS) if os.strerror(code) in text), None)


class ConcurrentChangeError(SidecarError):
    """A record changed through another replica each time this change was about to be
    made; nothing was changed. Trying again can succeed."""

    retryable: ClassVar[bool] = True


class InternalError(SidecarError):
    """A bug in the sidecar: a state that correct code never reaches."""


class ConfigError(UserError):
    """A setting has a bad value; names the field, the value, its source and the fix."""

    where_word: ClassVar[str] = "from"

    def __init__(self, *, field: str, value: object, source: str, problem: str, fix: str) -> None:
        self.field = field
        self.value = value
        self.source = source
        shown = f"{field} = {echo(value)}" if value is not None else field
        super().__init__(f"{shown} {problem}", where=source, fix=fix)


class VersionAlreadyPublishedError(UserError):
    """A version number is already published for a model; published versions are never replaced."""

    def __init__(self, model: str, version: int, path: os.PathLike[str] | str) -> None:
        self.model = model
        self.version = version
        super().__init__(
            f"model {model!r} version {version} is already published",
            where=os.fspath(path),
            fix="land the new model under a higher version number",
        )


class OnlyServableVersionError(UserError):
    """Refused: the action would leave TF Serving with no version of a model to serve."""

    def __init__(self, model: str, version: int, action: str, path: os.PathLike[str] | str) -> None:
        self.model = model
        self.version = version
        super().__init__(
            f"refusing to {action} model {model!r} version {version}: "
            "it is the only servable version",
            where=os.fspath(path),
            fix="publish another version first, or remove the model from TF Serving's config",
        )


class StagingError(UserError):
    """A staging directory cannot be published (wrong place, wrong filesystem, or gone)."""


class WarmupError(UserError):
    """A TF Serving warmup file cannot be written or read as asked."""


class JournalError(InternalError):
    """The job journal was asked for a transition or job that correct code never asks for."""
