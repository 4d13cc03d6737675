"""Coverage-triggered rebuilds: when traffic moves to shapes the served version was not
built for, build the current top shapes into a new served version.

A model's served version is *built for* a shape set when its engines were
compiled and measured for it and its warmup file runs it
(:mod:`sidecar.publish.published`). Coverage is the share of the recent requests
of the converted signature whose shape set the served version was built for,
as :class:`ShapeCounts` count them: this pod's shape store alone, or in a fleet
the whole fleet's traffic (:class:`sidecar.fleet.shape_source.FleetShapeSource`),
so every replica judges on the same counts. A rebuild of the served version's
incoming version is due when:

- the policy's ``rebuild_below_coverage`` is above 0, the window holds at least
  ``rebuild_min_requests`` requests, and coverage has stayed below the threshold
  for ``rebuild_after_seconds`` (timed in this process: a restart starts the
  clock again);
- a rebuild would change something: one of the top shape sets the rebuild
  would replay (``max_engines`` of them, as every build does) is not in the
  served version's warmup file. So a long tail of shapes that no engine budget
  can cover never makes rebuilds loop;
- the served version is the newest one the sidecar published (no operator
  rolled it back), its incoming version is still in the incoming base, no job
  of the model waits or runs, the model is not paused, and the incoming
  version's newest build did not end failed or skipped (an operator retries
  those with the admin API's rebuild).

The rebuild is queued as a journal job under the next served number
(:mod:`sidecar.tfserving.numbering`) with the reason, and runs as any job does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sidecar.config import ModelPolicy
from sidecar.publish.published import PublishedModels
from sidecar.publish.published_version import PublishedVersion
from sidecar.shapes import ShapeSet, coverage_of, rank_shape_sets
from sidecar.state import Job, JobJournal, JobState, newest_build
from sidecar.tfserving import numbering
from sidecar.watch import incoming_version_dir

_LOG = logging.getLogger("sidecar.rebuilds")


class ShapeCounts(Protocol):
    """The recent request counts coverage is judged on: :class:`sidecar.shapes.ShapeStore`
    (this pod's) or :class:`sidecar.fleet.shape_source.FleetShapeSource` (the fleet's)."""

    def shape_set_counts(self, model: str, signature: str) -> list[tuple[ShapeSet, int]]:
        """Every shape set of (model, signature) in the window with its request count."""
        ...


@dataclass(frozen=True)
class PlannedRebuild:
    """A rebuild that is due."""

    model: str
    """Model name."""
    version: int
    """The served number to build it under."""
    reason: str
    """Why, for the journal and the logs."""


@dataclass
class CoverageRebuilds:
    """Decides which models need a rebuild; ask :meth:`due` between jobs."""

    store: ShapeCounts
    """Recent request shapes (this pod's or the fleet's)."""
    published: PublishedModels
    """What each served version was built for."""
    incoming_base: Path
    """Where the incoming versions are."""
    signature_key: str
    """The signature jobs convert (coverage is judged on it)."""
    clock: Callable[[], float] = time.monotonic
    """Monotonic seconds, for how long coverage has been low."""
    _low_since: dict[str, float] = field(default_factory=dict, init=False)

    def due(
        self,
        journal: JobJournal,
        policy_for: Callable[[str], ModelPolicy],
        is_paused: Callable[[str], bool],
    ) -> list[PlannedRebuild]:
        """The rebuilds due now (at most one per model), each reported once."""
        jobs = journal.jobs()
        busy = {job.model for job in jobs if job.state is JobState.DISCOVERED
                or job.state.is_intermediate}
        planned = []
        for model in self.published.models():
            if model in busy or is_paused(model):
                continue
            rebuild = self._judge(model, policy_for(model), [j for j in jobs if j.model == model])
            if rebuild is not None:
                self._low_since.pop(model, None)
                _LOG.info("%s: rebuild due as %s: %s", model,
                          numbering.describe(rebuild.version), rebuild.reason)
                planned.append(rebuild)
        return planned

    def _judge(self, model: str, policy: ModelPolicy, jobs: list[Job]) -> PlannedRebuild | None:
        served = self._served_by_us(model, jobs)
        if served is None or policy.rebuild_below_coverage <= 0:
            self._low_since.pop(model, None)
            return None
        counts = self.store.shape_set_counts(model, self.signature_key)  # one read serves all
        coverage = coverage_of(counts, served.prebuilt_for(self.signature_key))
        if (coverage.total_requests < policy.rebuild_min_requests
                or coverage.share >= policy.rebuild_below_coverage):
            self._low_since.pop(model, None)
            return None
        now = self.clock()
        low_for = now - self._low_since.setdefault(model, now)
        if low_for < policy.rebuild_after_seconds:
            return None
        top = rank_shape_sets(counts, policy.max_engines)
        missing = _not_warmed_up(top.shape_sets, served.warmed_up_for(self.signature_key))
        if not missing:
            return None
        incoming = numbering.incoming_version(served.version)
        newest = newest_build(jobs, incoming)
        if newest is None or newest.state is not JobState.PUBLISHED:
            return None
        try:
            version = numbering.next_rebuild(newest.version)
        except numbering.VersionNumberError as exc:
            _LOG.warning("%s: no rebuild: %s", model, exc)
            return None
        reason = (f"coverage {coverage.share:.2f} below {policy.rebuild_below_coverage:g} for "
                  f"{low_for:.0f} s ({coverage.covered_requests} of {coverage.total_requests} "
                  f"recent requests); not built for {'; '.join(s.text() for s in missing)}")
        return PlannedRebuild(model, version, reason)

    def _served_by_us(self, model: str, jobs: list[Job]) -> PublishedVersion | None:
        """The served version, when it is the newest the sidecar published and its incoming
        version is still there; None otherwise."""
        versions = self.published.versions(model)
        ours = [job.version for job in jobs if job.state is JobState.PUBLISHED]
        if not versions or not ours or versions[-1] != max(ours):
            return None
        incoming = numbering.incoming_version(versions[-1])
        if incoming_version_dir(self.incoming_base, model, incoming) is None:
            return None
        return self.published.version(model, versions[-1])


def _not_warmed_up(top: list[ShapeSet], warmed_up: tuple[ShapeSet, ...]) -> list[ShapeSet]:
    return [shape_set for shape_set in top if not any(w.matches(shape_set) for w in warmed_up)]
