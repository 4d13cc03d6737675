"""The per-version job (convert, build, verify, warm up, publish) and the order jobs run in.

Public API: :func:`run_version_job` with its :class:`JobDependencies` and
:class:`JobSettings`, the result :class:`JobResult`, the :class:`JobQueue`, the
seams :class:`ShapeSource` (recorded request shapes), :class:`FleetContext` (the fleet
store), :class:`JobObserver` (metrics, logs) and :data:`ConverterFactory`, and the job's
errors.
"""

from __future__ import annotations

from sidecar.config.job import JobSettings
from sidecar.jobs.conversion import (
    ConverterFactory,
    ConverterLike,
    conversion_params,
    default_converter_factory,
)
from sidecar.jobs.dependencies import JobDependencies
from sidecar.jobs.errors import (
    ModelLoadError,
    ReplayError,
    SignatureError,
    VerificationError,
    VersionVanishedError,
)
from sidecar.jobs.fleet_work import FleetContext, FleetOrigin
from sidecar.jobs.job import run_version_job
from sidecar.jobs.observer import (
    JobObserver,
    LoggingJobObserver,
    StageOutcome,
)
from sidecar.jobs.queue import JobQueue, next_in_turn
from sidecar.jobs.replay import ReplayInputs, ReplayOrigin, ShapeSource, choose_replay_inputs
from sidecar.jobs.result import JobResult
from sidecar.jobs.session_model import SessionModel, SignatureSpec
from sidecar.jobs.verify import Comparison, compare_outputs

__all__ = [
    "Comparison",
    "ConverterFactory",
    "ConverterLike",
    "FleetContext",
    "FleetOrigin",
    "JobDependencies",
    "JobObserver",
    "JobQueue",
    "JobResult",
    "JobSettings",
    "LoggingJobObserver",
    "ModelLoadError",
    "ReplayError",
    "ReplayInputs",
    "ReplayOrigin",
    "SessionModel",
    "ShapeSource",
    "SignatureError",
    "SignatureSpec",
    "StageOutcome",
    "VerificationError",
    "VersionVanishedError",
    "choose_replay_inputs",
    "compare_outputs",
    "conversion_params",
    "default_converter_factory",
    "next_in_turn",
    "run_version_job",
]
