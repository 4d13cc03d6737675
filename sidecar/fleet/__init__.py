"""The fleet store: one conversion per key across replicas, artifacts, fleet-wide shapes.

A key is (model, served version, TensorFlow version, device slug)
(:class:`~sidecar.fleet.keys.FleetKey`). The store is a directory on a ReadWriteMany
volume shared by every replica (:class:`~sidecar.fleet.shared_dir.SharedDirectoryStore`,
behind the :class:`~sidecar.fleet.store.FleetStore` interface)::

    <store>/
      fleet-store.json                    {"format": 1}
      keys/tf-<tensorflow>/<slug>/<model>/<served>/
        lease.<g>                         holder of generation g: replica, token,
                                          lease seconds, renewal counter (replaced on renewal)
        outcome.<g>                       how g ended, created exclusively, never changed:
                                          complete (naming its artifact) | revoked | released
        artifact.<g>.<token>/             one attempt of g's holder, written by it only
          version/                        the published version directory: the converted
                                          model or the original, assets.extra/
                                          tf_serving_warmup_requests, assets.extra/tftrt/
                                          engines/<namespace>/ (XLA cache entries) and
                                          assets.extra/tftrt/conversion.json (the report)
          artifact.json                   flavour, reason, built_by, generation
        .<name>.new-*, .<name>.tmp-*      records being written (hidden, never read)
      shapes/<replica>.json               one replica's shape counts (replaced atomically)

An artifact is complete when, and only when, ``outcome.<g>`` says ``complete``: the holder
creates it last, after ``artifact.<g>.<token>/`` is written and flushed; a completed one is
never written again. Leases expire when their renewals stop for the lease's duration, as
the observer measures on its own monotonic clock, and are fenced: completing and taking
over both create ``outcome.<g>``, so exactly one wins (:mod:`sidecar.fleet.lease`).
Shape counts merge over the files written within a horizon (:mod:`sidecar.fleet.shapes`,
imported on its own: it reads :mod:`sidecar.shapes`, which loads TensorFlow's protos).
"""

from __future__ import annotations

from sidecar.fleet.errors import (
    FleetArgumentError,
    FleetError,
    FleetStoreError,
    LeaseLostError,
    StoreFormatError,
)
from sidecar.fleet.keys import FleetKey
from sidecar.fleet.lease import ClaimResult, Completed, Held, Lease, LeaseBook, Outcome
from sidecar.fleet.renewal import LeaseKeeper
from sidecar.fleet.shared_dir import SharedDirectoryStore
from sidecar.fleet.store import ArtifactRecord, FleetStore

__all__ = [
    "ArtifactRecord",
    "ClaimResult",
    "Completed",
    "FleetArgumentError",
    "FleetError",
    "FleetKey",
    "FleetStore",
    "FleetStoreError",
    "Held",
    "Lease",
    "LeaseBook",
    "LeaseKeeper",
    "LeaseLostError",
    "Outcome",
    "SharedDirectoryStore",
    "StoreFormatError",
]
