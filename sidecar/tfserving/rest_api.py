"""TF Serving's REST API as the front admits it: one definition of its paths, read by
Envoy's routes (:mod:`sidecar.envoy.bootstrap`) and by the REST recorder's parser.

The grammar is TF Serving's own (``http_rest_api_util.cc``), case-insensitive as there:

- ``POST /v1/models/<name>[/versions/<n>|/labels/<label>]:(predict|classify|regress)``
  runs a model (recorded);
- ``GET /v1/models[/<name>][/versions/<n>|/labels/<label>][/metadata]`` reads its status
  or metadata (TF Serving itself answers a missing name with its own error).

The expressions use only syntax RE2 (Envoy) and Python's ``re`` read alike.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Final

PREDICTION_PATH: Final = (
    r"(?i)/v1/models/([^/:]+)(?:/versions/([0-9]+)|/labels/([^/:]+))?"
    r":(classify|regress|predict)")
"""The inference calls (Envoy matches the path without its query string)."""

STATUS_PATH: Final = (
    r"(?i)/v1/models(?:/[^/:]+)?(?:/versions/[0-9]+|/labels/[^/:]+)?(?:/metadata)?")
"""The read-only calls: model status and metadata."""

METHODS: Final = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}
"""REST verb -> the PredictionService method it stands for (as the gRPC path records it)."""

_PREDICTION = re.compile(PREDICTION_PATH)


@dataclass(frozen=True)
class PredictionTarget:
    """What an inference path names: the model, an optional version or label, the method."""

    model: str
    version: int | None
    label: str | None
    method: str
    """``Predict``, ``Classify`` or ``Regress``."""


def prediction_target(path: str) -> PredictionTarget | None:
    """The target of an inference ``path`` (query string ignored, names percent-decoded as
    TF Serving decodes them); None when the path is not an inference call."""
    match = _PREDICTION.fullmatch(path.partition("?")[0])
    if match is None:
        return None
    name, version, label, verb = match.groups()
    return PredictionTarget(
        model=urllib.parse.unquote(name),
        version=int(version) if version is not None else None,
        label=urllib.parse.unquote(label) if label is not None else None,
        method=METHODS[verb.lower()],
    )


def method_label(path: str) -> str:
    """The PredictionService method an inference ``path`` calls, for counters (never the
    path itself, which clients choose): ``Predict``, ``Classify``, ``Regress`` or ``other``."""
    verb = path.partition("?")[0].rpartition(":")[2].lower()
    return METHODS.get(verb, "other")
