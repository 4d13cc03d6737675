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
        rejected.<g>                      an installer refused g's completed artifact as
                                          damaged (created exclusively, never changed):
                                          the key is built again as generation g + 1
        artifact.<g>.<token>/             one attempt of g's holder, written by it only
          version/                        the published version directory: the converted
                                          model or the original, assets.extra/
                                          tf_serving_warmup_requests, assets.extra/tftrt/
                                          engines/<namespace>/ (XLA cache entries) and
                                          assets.extra/tftrt/conversion.json (the report)
          artifact.json                   flavour, reason, built_by, generation, manifest
                                          (each file's size and sha256, as the builder
                                          copied it in; checked by every install)
        .<name>.new-*, .<name>.tmp-*      records being written (hidden, never read)
      shapes/<replica>.json               one replica's shape counts (replaced atomically)
      replicas/<replica>/                 lease.<g>, outcome.<g> as a key's: the live
                                          process's claim on that replica id
                                          (:mod:`sidecar.fleet.replica_claim`)
      controls/, rollbacks/               operator records (:mod:`sidecar.fleet.operator_records`)

An artifact is complete when, and only when, ``outcome.<g>`` says ``complete`` and no
``rejected.<g>`` exists: the holder creates the outcome last, after
``artifact.<g>.<token>/`` is written and flushed; a completed one is never written again.
Leases expire when their renewals stop for the lease's duration, as the observer measures
on its own monotonic clock, and are fenced: completing and taking over both create
``outcome.<g>``, so exactly one wins (:mod:`sidecar.fleet.lease`).
Only a replica's start creates the store (root and marker); every directory created later
goes through :class:`~sidecar.fleet.store_root.StoreRoot`, so a store deleted under
running replicas is a storage fault, never recreated in part. Shape counts merge over the
files written within a horizon (:mod:`sidecar.fleet.shapes`,
imported on its own: it reads :mod:`sidecar.shapes`, which loads TensorFlow's protos).
"""

from __future__ import annotations

from sidecar.fleet.errors import (
    DamagedArtifactError,
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
    "DamagedArtifactError",
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
