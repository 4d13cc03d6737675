"""The incoming version a job reads, and whether it is still what the job started from.

Three things can happen to it while the job runs, and each has its own ending: it is
removed (the job is SKIPPED), incoming itself fails (a storage fault: FAILED and retried
after a backoff), or its files are replaced or rewritten (the job starts again).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from sidecar.errors import StorageError
from sidecar.jobs.errors import SourceChangedError, VersionVanishedError
from sidecar.jobs.fingerprint import content_fingerprint
from sidecar.watch import look_at_incoming


class JobSource:
    """``incoming/<model>/<version>`` as one job sees it.

    :meth:`start` takes the content fingerprint; :meth:`check` raises when the
    version is no longer the one the job started from.
    """

    def __init__(
        self, incoming_base: Path, model: str, incoming_version: int, *, named: str,
        is_served: Callable[[str], bool],
    ) -> None:
        self._base = incoming_base
        self._model = model
        self._version = incoming_version
        self._named = named
        self._is_served = is_served
        self._fingerprint: str | None = None
        self.path = incoming_base / model / str(incoming_version)
        """The version directory."""

    @property
    def fingerprint(self) -> str | None:
        """The content fingerprint taken at :meth:`start` (None before)."""
        return self._fingerprint

    def start(self) -> None:
        """Take the fingerprint the job's input is checked against."""
        self.check()
        self._fingerprint = self._read_fingerprint()

    def check(self) -> None:
        """Raise VersionVanishedError if the version was removed, StorageError if incoming
        cannot say (a fault), SourceChangedError if its content differs from :meth:`start`'s."""
        if not self.path.is_dir():
            self._raise_gone()
        if self._fingerprint is None:
            return
        now = self._read_fingerprint()
        if now != self._fingerprint:
            raise self._changed(f"content fingerprint {self._fingerprint[:12]} became "
                                f"{now[:12]}")

    def _changed(self, how: str) -> SourceChangedError:
        return SourceChangedError(
            f"{self._named} changed in incoming while its job ran ({how}); its work is "
            "abandoned and it starts again once the version settles",
            where=str(self.path),
            fix="land a new model under a new version number instead of replacing one",
        )

    def _read_fingerprint(self) -> str:
        try:
            return content_fingerprint(self.path)
        except FileNotFoundError as exc:
            if not self.path.is_dir():
                self._raise_gone()
            raise self._changed(f"{exc.filename or 'a file'} vanished while it was read") from exc
        except OSError as exc:
            raise StorageError.from_os_error(
                exc, action=f"read {self._named} in incoming", path=exc.filename or self.path
            ) from exc

    def _raise_gone(self) -> NoReturn:
        view = look_at_incoming(self._base, [(self._model, self._version)],
                                is_served=self._is_served)
        if not view.is_trusted(self._model):
            raise StorageError(view.faults[0].describe(), where=str(self.path))
        when = "before its turn" if self._fingerprint is None else "while its job ran"
        raise VersionVanishedError(
            f"{self._named} was removed from incoming {when}; nothing was published",
            where=str(self.path),
        )
