"""What the service does about each change in the incoming base: queue a version that
is ready, restore the withdrawn builds of one that came back unchanged, skip the waiting
builds and withdraw the published ones of one that left."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from sidecar.jobs.fingerprint import content_fingerprint
from sidecar.publish import VersionPublisher
from sidecar.service.serving_upkeep import ServingUpkeep
from sidecar.state import JobJournal, JobState
from sidecar.tfserving import numbering
from sidecar.tfserving.numbering import VersionNumberError
from sidecar.watch import WatchEvent, WatchEventKind

_LOG = logging.getLogger("sidecar.service")


class IncomingChanges:
    """Applies the watcher's events to the journal and the serving base.

    Each version withdrawn is appended to ``withdrawn`` as (model, served version).
    Jobs :meth:`hold` holds wait until their incoming version is READY again.
    ``incoming_base`` is where links in a returning version may lead (its fingerprint
    follows them, as the job's did).
    """

    def __init__(self, journal: JobJournal, publisher: VersionPublisher, upkeep: ServingUpkeep,
                 withdrawn: list[tuple[str, int]], *, incoming_base: Path) -> None:
        self._incoming_base = incoming_base
        self._journal = journal
        self._publisher = publisher
        self._upkeep = upkeep
        self._withdrawn = withdrawn
        self._held: set[tuple[str, int]] = set()

    @property
    def held(self) -> frozenset[tuple[str, int]]:
        """(model, served version) jobs waiting for their source to settle again."""
        return frozenset(self._held)

    def hold(self, model: str, version: int) -> None:
        """Keep (model, served version) waiting until its incoming version is READY again."""
        self._held.add((model, version))

    def apply(self, events: Sequence[WatchEvent]) -> None:
        """Act on each event, in order."""
        for event in events:
            if event.kind is WatchEventKind.READY:
                self._on_ready(event)
            elif event.kind is WatchEventKind.VANISHED:
                self._on_vanished(event)
            else:
                _LOG.info("%s/%s appeared; waiting for it to settle", event.model, event.version)

    def _on_ready(self, event: WatchEvent) -> None:
        try:
            served = numbering.served_version(event.version)
        except VersionNumberError as exc:
            _LOG.error("%s/%s cannot be served: %s", event.model, event.version, exc)
            return
        self._release(event.model, event.version)
        job, new = self._journal.discover(event.model, served)
        if new:
            _LOG.info("%s/%s is ready; queued as %s", event.model, event.version,
                      numbering.describe(served))
        elif job.state is JobState.PUBLISHED and not self._restore(event):
            _LOG.info("%s/%s was published before; a published version is never republished",
                      event.model, event.version)
        elif job.state in (JobState.FAILED, JobState.SKIPPED):
            _LOG.info("%s/%s stays %s (%s)", event.model, event.version, job.state.value,
                      job.reason)

    def _restore(self, event: WatchEvent) -> bool:
        """Put the withdrawn builds of an incoming version back into view when it returned
        with the content they were built from; True if any was."""
        restored = False
        fingerprint: str | None = None
        for job in self._journal.jobs([JobState.PUBLISHED], model=event.model):
            if job.incoming_version != event.version or self._publisher.is_published(
                    job.model, job.version) or not self._upkeep.is_withdrawn(job.model,
                                                                             job.version):
                continue
            try:
                fingerprint = fingerprint or content_fingerprint(
                    event.path, links_within=self._incoming_base)
            except OSError as exc:
                _LOG.warning("%s/%s: cannot read it to compare (%s); not restored yet",
                             event.model, event.version, exc)
                return False
            if job.source_fingerprint != fingerprint:
                _LOG.warning(
                    "%s/%s is back in incoming with other content than %s was built from; "
                    "it stays withdrawn (land new content under a new version number)",
                    event.model, event.version, numbering.describe(job.version))
                continue
            restored = self._upkeep.restore(job.model, job.version) or restored
        if restored:
            self._upkeep.retain(event.model)
            self._upkeep.write_model_config()
        return restored

    def _release(self, model: str, incoming: int) -> None:
        self._held = {(m, v) for m, v in self._held
                      if (m, numbering.incoming_version(v)) != (model, incoming)}

    def _on_vanished(self, event: WatchEvent) -> None:
        """Skip the waiting builds of an incoming version that left; withdraw its published
        ones (every rebuild of it, newest first)."""
        self._release(event.model, event.version)
        for job in self._journal.jobs(model=event.model):
            if job.incoming_version != event.version:
                continue
            if job.state is JobState.DISCOVERED:
                self._journal.advance(
                    job.model, job.version, JobState.SKIPPED,
                    reason="removed from incoming before its turn; nothing was published",
                )
            elif job.state is JobState.PUBLISHED and self._upkeep.withdraw(job.model,
                                                                            job.version):
                self._withdrawn.append((job.model, job.version))
                self._upkeep.write_model_config()

