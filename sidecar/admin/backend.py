"""The seams between the admin API and the rest of the sidecar.

The gRPC server only calls an :class:`AdminBackend`; :class:`SidecarAdminBackend`
(in :mod:`sidecar.admin.sidecar_backend`) is the real one, built from the journal,
the serving base, the shape store and a :data:`ConversionSubmitter` the service
supplies to run conversions on its own worker.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sidecar.admin.views import (
    ModelSummaryView,
    ModelView,
    OperationView,
    PolicyView,
    RollBackView,
    ShapeStatisticsView,
)
from sidecar.config import ModelPolicy
from sidecar.config.overrides import PolicyOverrides
from sidecar.state.controls import ModelControl
from sidecar.watch.listing import Refusal

T = TypeVar("T")


@dataclass(frozen=True)
class ConversionRequest:
    """A conversion asked for through the admin API, checked and ready to run."""

    model: str
    """Model name."""
    version: int
    """The served version number to build (see :mod:`sidecar.tfserving.numbering`)."""
    policy: ModelPolicy
    """The policy to run it with: configured, persisted overrides, then ``overrides``."""
    overrides: PolicyOverrides
    """The overrides given for this conversion alone."""
    rebuild: bool
    """Whether the caller asked for a rebuild."""
    restart: bool = False
    """True: the journal job ended failed or skipped; restart it before running it."""
    reason: str = ""
    """Why it runs, recorded in the journal with the job."""


ConversionSubmitter = Callable[[ConversionRequest], "Future[Any]"]
"""Queue a conversion; return a Future that completes when its job reached a final state.

The runner calls ``set_running_or_notify_cancel()`` when it starts the job (so a
queued conversion can still be cancelled), and sets the job's result or the error
that stopped it. The version's final state is read from the journal.
"""


class LoopCall(Protocol):
    """Runs work on the service loop's thread, the serving base's one writer, and returns
    the Future of its result (``LoopCommands.call``)."""

    def __call__(self, work: Callable[[], T]) -> Future[T]:
        """Queue ``work``; its Future completes once the loop ran it."""
        ...


class RollbackObserver(Protocol):
    """Told about rollbacks (metrics implement it)."""

    def rolled_back(self, model: str, version: int, now_serving: int) -> None:
        """``version`` of ``model`` was moved out of view; ``now_serving`` is served."""
        ...


class AdminBackend(Protocol):
    """Everything the admin API can ask of the sidecar; raises SidecarErrors only."""

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the state to be loaded; True once it is."""
        ...

    def list_models(self) -> list[ModelSummaryView]:
        """Every known model, sorted by name."""
        ...

    def refused_directories(self) -> list[Refusal]:
        """Incoming directories that look like a model or a version but are not served."""
        ...

    def get_model(self, model: str) -> ModelView:
        """One model with its versions; NotFoundError if unknown."""
        ...

    def start_conversion(
        self, model: str, version: int, overrides: PolicyOverrides, rebuild: bool
    ) -> OperationView:
        """Check and queue a conversion; return its operation."""
        ...

    def get_operation(self, name: str) -> OperationView:
        """One operation; NotFoundError if unknown."""
        ...

    def list_operations(self, model: str | None) -> list[OperationView]:
        """Operations, newest first, optionally of one model."""
        ...

    def cancel_operation(self, name: str) -> OperationView:
        """Cancel a queued operation; PreconditionError once it runs or is done."""
        ...

    def shape_statistics(self, model: str, limit: int) -> ShapeStatisticsView:
        """The top ``limit`` shape sets per signature of the model's recent traffic."""
        ...

    def set_policy(self, model: str, overrides: PolicyOverrides, clear: bool) -> PolicyView:
        """Persist policy overrides for the model."""
        ...

    def pause(self, model: str, reason: str) -> ModelControl:
        """Hold back new conversions of the model (persisted)."""
        ...

    def resume(self, model: str) -> ModelControl:
        """Let conversions of the model start again (persisted)."""
        ...

    def roll_back(self, model: str, reason: str) -> RollBackView:
        """Move the newest published version out of TF Serving's view; ``reason`` is the
        operator's (may be empty)."""
        ...
