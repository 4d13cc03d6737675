"""The incoming version a job reads, and whether it is still what the job started from.

Three things can happen to it while the job runs, and each has its own ending: it is
removed (the job is SKIPPED), incoming itself fails (a storage fault: FAILED and retried
after a backoff), or its files are replaced, rewritten or renamed, or another name comes to
stand for the same number (the job starts again once one version directory has settled).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from sidecar.base.errors import StorageError, echo
from sidecar.base.faults import FaultArea
from sidecar.jobs.errors import SourceChangedError, VersionVanishedError
from sidecar.jobs.fingerprint import content_fingerprint
from sidecar.tfserving.numbering import clash_error
from sidecar.watch import look_at_incoming
from sidecar.watch.listing import version_dirs


class JobSource:
    """``incoming/<model>/<version>`` as one job sees it, under the name found on disk
    (``0007`` for incoming 7 stays ``0007``).

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
        found = version_dirs(incoming_base, model, incoming_version)
        self.path = found[0] if len(found) == 1 else incoming_base / model
        """The version directory as found when the job began (the model directory when
        none or several stood for the version: :meth:`check` then raises)."""

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
        cannot say (a fault), SourceChangedError if it is no longer the one directory
        :meth:`start` read, with the same content."""
        try:
            found = version_dirs(self._base, self._model, self._version)
        except OSError as exc:
            raise StorageError.from_os_error(
                exc, action=f"list {self._named}'s model directory in incoming",
                path=exc.filename or self._base / self._model, area=FaultArea.INCOMING) from exc
        if len(found) > 1:
            clash = clash_error([path.name for path in found], self._version)
            raise SourceChangedError(
                f"{self._named} cannot be read: {clash.what}; the job waits until one of "
                "them is left", where=str(self._base / self._model), fix=clash.fix)
        if not found:
            self._raise_gone()
        if found[0] != self.path:
            raise self._changed(f"renamed to {echo(found[0].name)}")
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
            # Links inside the incoming base count as their content, as publishing copies it.
            return content_fingerprint(self.path, links_within=self._base)
        except FileNotFoundError as exc:
            if not self.path.is_dir():
                self._raise_gone()
            raise self._changed(f"{exc.filename or 'a file'} vanished while it was read") from exc
        except OSError as exc:
            raise StorageError.from_os_error(
                exc, action=f"read {self._named} in incoming", path=exc.filename or self.path,
                area=FaultArea.INCOMING,
            ) from exc

    def _raise_gone(self) -> NoReturn:
        view = look_at_incoming(self._base, [(self._model, self._version)],
                                is_served=self._is_served)
        if not view.is_trusted(self._model):
            raise StorageError(view.faults[0].describe(), where=str(self.path),
                               area=FaultArea.INCOMING)
        when = "before its turn" if self._fingerprint is None else "while its job ran"
        raise VersionVanishedError(
            f"{self._named} was removed from incoming {when}; nothing was published",
            where=str(self.path),
        )
