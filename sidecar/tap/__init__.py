"""The tap: a gRPC proxy in front of TF Serving that forwards the calls clients may make
(`FORWARDED_METHODS`: PredictionService and ModelService/GetModelStatus) unchanged, refuses
every other one with PERMISSION_DENIED, and records request shapes off the hot path.

Public API: `serve_tap(settings, recorder, observer=None, clock=time.time) -> TapServer`,
`TapProcess` (the tap in a process of its own, as `tftrt-sidecar run` starts it),
`TapSettings`, the `Recorder` and `TapObserver` protocols, `TapStats`, and the errors.
"""

from __future__ import annotations

from sidecar.tap.errors import TapError, TapSettingsError, TapStartError, UnparsableRequestError
from sidecar.tap.methods import FORWARDED_METHODS, ForwardedMethod
from sidecar.tap.process import TapProcess
from sidecar.tap.recording import Recorder
from sidecar.tap.request_shapes import DEFAULT_SIGNATURE, observations_from_request
from sidecar.tap.server import TapServer, serve_tap
from sidecar.tap.settings import TapSettings
from sidecar.tap.stats import TapObserver, TapStats

__all__ = [
    "DEFAULT_SIGNATURE",
    "FORWARDED_METHODS",
    "ForwardedMethod",
    "Recorder",
    "TapError",
    "TapObserver",
    "TapProcess",
    "TapServer",
    "TapSettings",
    "TapSettingsError",
    "TapStartError",
    "TapStats",
    "UnparsableRequestError",
    "observations_from_request",
    "serve_tap",
]
