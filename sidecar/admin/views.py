"""What the admin backend answers with: plain immutable values, free of gRPC and protobuf."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sidecar.config import ModelPolicy
from sidecar.config.overrides import PolicyOverrides
from sidecar.publish.published_accuracy import AccuracyRecord
from sidecar.publish.published_version import EngineInfo
from sidecar.shapes import ShapeSet


@dataclass(frozen=True)
class ModelSummaryView:
    """One line of ListModels."""

    name: str
    """Model name."""
    serving_versions: tuple[int, ...]
    """Versions TF Serving can see, ascending."""
    versions_by_state: Mapping[str, int]
    """Journal state -> number of versions in it."""
    paused: bool
    """Whether new conversions are held back."""


@dataclass(frozen=True)
class VersionView:
    """One version of a model, from the journal and the serving base."""

    version: int
    """Served version number (incoming version * 1000 + rebuild)."""
    state: str
    """Journal state ("" without a job)."""
    reason: str = ""
    """Why it failed, was skipped or restarted."""
    flavour: str = ""
    """"converted" or "original", once chosen."""
    flavour_reason: str = ""
    """Why the original was published."""
    attempts: int = 0
    """Runs of its job."""
    created_at: float = 0.0
    """When it was discovered (epoch seconds)."""
    updated_at: float = 0.0
    """When its state last changed (epoch seconds)."""
    in_serving: bool = False
    """Whether TF Serving can see it."""
    stage_timings: tuple[tuple[str, float], ...] = ()
    """(state, seconds) of the latest attempt."""
    engines: tuple[EngineInfo, ...] = ()
    """Engines compiled for it."""
    prebuilt: tuple[tuple[str, ShapeSet], ...] = ()
    """(signature, shape set) pairs it has engines for."""
    backend: str = ""
    """Engine compiler used."""
    backend_reason: str = ""
    """Why that compiler."""
    candidate: str = ""
    """The converter's measured choice ("original", "frozen", "frozen+xla", "frozen+bf16",
    "frozen+int8", "xla")."""
    candidate_reason: str = ""
    """Why it won."""
    built_by: str = ""
    """In a fleet: the replica that built it ("" in single-pod mode)."""
    installed_from_store: bool = False
    """In a fleet: True when this replica installed it from the store instead of building."""
    device: str = ""
    """Build device slug."""
    accuracy: AccuracyRecord | None = None
    """What it computes in and its measured accuracy; None when not measured."""
    converted_as: int = 0
    """On an original served first: the served number its converted form takes over as
    (0 otherwise)."""
    takes_over_from: int = 0
    """On the converted form of an original served first: that original's served number,
    its rollback target (0 otherwise)."""


@dataclass(frozen=True)
class CoverageView:
    """How much of a signature's recent traffic the served version has prebuilt."""

    signature: str
    """Signature name."""
    covered_requests: int
    """Requests whose shape set is prebuilt."""
    total_requests: int
    """Requests in the shape store's window."""

    @property
    def ratio(self) -> float:
        """Covered share in [0, 1]; 1.0 without traffic."""
        return self.covered_requests / self.total_requests if self.total_requests else 1.0


@dataclass(frozen=True)
class ModelView:
    """GetModel's answer."""

    name: str
    """Model name."""
    paused: bool
    """Whether new conversions are held back."""
    policy: ModelPolicy
    """The policy its next conversion uses."""
    overrides: PolicyOverrides
    """The persisted overrides in it."""
    versions: tuple[VersionView, ...]
    """Newest first."""
    coverage: tuple[CoverageView, ...]
    """Per signature with recent traffic."""


@dataclass(frozen=True)
class OperationView:
    """A conversion started through the admin API."""

    name: str
    """``operations/<id>``."""
    model: str
    """Model name."""
    version: int
    """Version number."""
    rebuild: bool
    """Whether it converts a failed or skipped version again."""
    overrides: PolicyOverrides
    """Overrides given for this conversion."""
    progress: str
    """"queued", "running" or "done"."""
    state: str
    """The version's journal state now."""
    created_at: float
    """When it was started (epoch seconds)."""
    updated_at: float
    """When the version's state last changed, or ``created_at``."""
    failure: BaseException | None = None
    """Once done: why it failed (the wire maps it to a status through the one error table),
    or None."""
    response: VersionView | None = None
    """Once done without error: the version."""

    @property
    def done(self) -> bool:
        """Whether it finished (published, skipped, failed or cancelled)."""
        return self.progress == "done"


@dataclass(frozen=True)
class ShapeCountView:
    """One shape set of a signature's recent traffic."""

    shape_set: ShapeSet
    """The request shapes."""
    count: int
    """Requests with it."""
    share: float
    """Its share of the signature's requests."""
    prebuilt: bool
    """Whether the served version has engines for it."""


@dataclass(frozen=True)
class SignatureShapesView:
    """The top shape sets of one signature."""

    signature: str
    """Signature name."""
    total_requests: int
    """Requests in the window."""
    top: tuple[ShapeCountView, ...]
    """Most requests first."""
    coverage: CoverageView
    """Coverage by the served version."""


@dataclass(frozen=True)
class ShapeStatisticsView:
    """GetShapeStatistics's answer."""

    model: str
    """Model name."""
    signatures: tuple[SignatureShapesView, ...]
    """Signatures with recent traffic."""
    refused_by_reason: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Observations the shape store refused, by reason."""


@dataclass(frozen=True)
class PolicyView:
    """SetModelPolicy's answer."""

    model: str
    """Model name."""
    overrides: PolicyOverrides
    """The persisted overrides."""
    effective: ModelPolicy
    """The configured policy with them applied."""


@dataclass(frozen=True)
class RollBackView:
    """RollBack's answer."""

    model: str
    """Model name."""
    rolled_back_version: int
    """The version taken out of view."""
    now_serving_version: int
    """The version TF Serving serves instead."""
    kept_at: str
    """Where the rolled-back version is kept."""
