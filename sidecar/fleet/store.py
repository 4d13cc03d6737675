"""The fleet store's one interface, and the record of a completed artifact.

Whatever backs the store (today a shared directory, :class:`SharedDirectoryStore`; an
object store with conditional writes could later) offers exactly this: claim a key,
renew and end the claim, complete an artifact under it, read completed artifacts, refuse
a damaged one so that the key is built again, list them, and keep one shape-count file
per replica. Every method raises :class:`~sidecar.fleet.errors.FleetStoreError` (a
retryable storage fault) when the backing storage refuses,
:class:`~sidecar.fleet.errors.LeaseLostError` when a lease is no longer the caller's, and
:class:`~sidecar.fleet.errors.DamagedArtifactError` when a completed artifact is not what
its builder completed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from sidecar.base.errors import echo
from sidecar.fleet.errors import StoreFormatError
from sidecar.fleet.keys import FleetKey
from sidecar.fleet.lease import ClaimResult, Lease
from sidecar.fleet.manifest import Manifest

FLAVOURS: Final = frozenset({"converted", "original"})
"""What an artifact holds: the converted model, or the original (with the reason)."""


@dataclass(frozen=True)
class ArtifactRecord:
    """What a completed artifact is, written into it (``artifact.json``) before completion."""

    key: FleetKey
    """The key it was built for."""

    flavour: str
    """``"converted"`` or ``"original"`` (the journal's flavour)."""

    reason: str | None
    """Why the original was published instead (None for a converted model)."""

    built_by: str
    """The replica that built it."""

    generation: int
    """The lease generation it was completed under."""

    source_fingerprint: str | None = None
    """The content fingerprint of the incoming version it was built from
    (:func:`sidecar.jobs.fingerprint.content_fingerprint`): a replica installs it only for
    the same content."""

    manifest: Manifest | None = None
    """Every file of the artifact's version tree with its size and sha256, as its builder
    copied them into the store (:mod:`sidecar.fleet.manifest`); None in an artifact
    completed before manifests were recorded, which is installed unchecked (its model must
    still load)."""

    def __post_init__(self) -> None:
        if self.flavour not in FLAVOURS:
            raise StoreFormatError(f"artifact flavour {echo(self.flavour)} is not one of "
                                   f"{sorted(FLAVOURS)}", where=self.key.describe())

    def to_json(self) -> dict[str, Any]:
        """The record as ``artifact.json`` holds it."""
        return {"model": self.key.model, "served": self.key.served,
                "tensorflow": self.key.tensorflow, "slug": self.key.slug,
                "flavour": self.flavour, "reason": self.reason, "built_by": self.built_by,
                "generation": self.generation, "source_fingerprint": self.source_fingerprint,
                "manifest": None if self.manifest is None else self.manifest.to_json()}

    @classmethod
    def from_json(cls, record: dict[str, Any], where: str) -> ArtifactRecord:
        """Inverse of :meth:`to_json`; StoreFormatError naming the field that is wrong."""
        try:
            key = FleetKey(record["model"], int(record["served"]), record["tensorflow"],
                           record["slug"])
            fingerprint = record.get("source_fingerprint")
            manifest = record.get("manifest")
            return cls(key, str(record["flavour"]), record.get("reason"),
                       str(record["built_by"]), int(record["generation"]),
                       None if fingerprint is None else str(fingerprint),
                       None if manifest is None else Manifest.from_json(manifest))
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreFormatError(
                f"artifact record lacks or mistypes {exc}", where=where,
                fix="nothing to do: an installer refuses it and the fleet builds the key again",
            ) from exc


class FleetStore(Protocol):
    """The shared store of a fleet (see :mod:`sidecar.fleet` for the layout on a volume)."""

    @property
    def replica(self) -> str:
        """This replica's identity."""
        ...

    def claim(self, key: FleetKey) -> ClaimResult:
        """A :class:`Lease` on ``key`` if it is free or its holder's lease expired;
        :class:`Held` while another replica holds it; :class:`Completed` once it is done."""
        ...

    def renew(self, lease: Lease) -> None:
        """Keep ``lease`` (:class:`~sidecar.fleet.renewal.LeaseKeeper` calls this)."""
        ...

    def release(self, lease: Lease) -> None:
        """Give ``key`` up without completing it, so another replica may claim it at once."""
        ...

    def complete(
        self, key: FleetKey, lease: Lease, version_dir: Path, *, flavour: str,
        reason: str | None, source_fingerprint: str | None = None,
    ) -> ArtifactRecord:
        """Store the published version at ``version_dir`` (model, warmup file, engines,
        report) as ``key``'s artifact, built from the incoming content
        ``source_fingerprint``, complete and immutable, unless ``lease`` was lost
        (LeaseLostError; nothing of it is then visible)."""
        ...

    def artifact(self, key: FleetKey) -> ArtifactRecord | None:
        """The completed artifact's record, or None while ``key`` is not complete;
        DamagedArtifactError when its record cannot be read."""
        ...

    def copy_artifact(self, key: FleetKey, destination: Path) -> ArtifactRecord | None:
        """Copy the completed artifact's version tree into the empty directory
        ``destination`` (a publisher's staging directory); None while it is not complete.
        DamagedArtifactError when what was copied differs from the artifact's manifest."""
        ...

    def reject(self, key: FleetKey, generation: int, reason: str) -> bool:
        """Refuse ``key``'s completed ``generation`` for ``reason`` (it is damaged), so the
        key can be claimed again and is built under a new generation by exactly one
        replica. True when that generation is no longer what installers get (refused now,
        by another replica before, or gone); False when the key was refused
        :data:`~sidecar.fleet.lease.MAX_REJECTIONS` times already: it is kept, for a person
        to look at, and not built again by itself."""
        ...

    @property
    def refused_artifacts(self) -> Mapping[str, int]:
        """Artifacts this replica refused so far (:meth:`reject`), by model."""
        ...

    @property
    def corrupt_outcomes(self) -> int:
        """Outcome files this replica found unreadable so far, each counted once."""
        ...

    def completed_keys(self, tensorflow: str, slug: str) -> list[FleetKey]:
        """Every completed key built for ``tensorflow`` and ``slug``, sorted."""
        ...

    def contribute_shapes(self, data: bytes) -> None:
        """Replace this replica's shape-count file with ``data``
        (:mod:`sidecar.fleet.shapes` writes and reads the format)."""
        ...

    def shape_contributions(self) -> dict[str, bytes]:
        """Every replica's shape-count file, by replica id (fresh or not)."""
        ...
