"""The fleet's unit of work: a key = (model, served version, TensorFlow version, device slug).

Each key is converted once in the fleet. Its one spelling in the store is
``keys/tf-<tensorflow>/<slug>/<model>/<served>``: the engine namespace first (the same
``tf-<version>/<slug>`` that :func:`converter.engine_namespace` gives the node's engine
cache), so a replica lists what exists for its own namespace in one directory. Model names
and version numbers follow the serving base's rules (:mod:`sidecar.tfserving.model_names`,
:mod:`sidecar.tfserving.numbering`), so a key's path never differs from its fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Final

from sidecar.base.errors import echo
from sidecar.fleet.errors import FleetArgumentError
from sidecar.tfserving import numbering
from sidecar.tfserving.model_names import model_name_problem

SLUG_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
"""A device slug as :attr:`converter.BuildDevice.slug` writes it (lower case, ``.``, ``-``)."""

TF_VERSION_PATTERN: Final = re.compile(r"[0-9][0-9A-Za-z.+-]{0,63}")
"""A TensorFlow version string (``2.21.0``, ``2.22.0rc1``, ``2.21.0+nv25.01``)."""

KEYS_DIR: Final = "keys"
"""The store's directory of keys."""


@dataclass(frozen=True, order=True)
class FleetKey:
    """One model version built for one TensorFlow version and one device model.

    Construct it with the fields; it is checked on construction (FleetArgumentError naming the
    field), so a key in hand always has a path.
    """

    model: str
    """The model's name, as in the serving base."""

    served: int
    """TF Serving's version number (a rebuild is its own key: ``N * 1000 + k``)."""

    tensorflow: str
    """The TensorFlow version the artifact was built with (``tf.__version__``)."""

    slug: str
    """The device model's slug (:attr:`converter.BuildDevice.slug`)."""

    def __post_init__(self) -> None:
        problem = model_name_problem(self.model)
        if problem is not None:
            raise FleetArgumentError(f"fleet key model: {problem}")
        if not 0 <= self.served <= numbering.MAX_SERVED_VERSION:
            raise FleetArgumentError(
                f"fleet key version {echo(self.served)} is not a served version number",
                fix=f"use 0 to {numbering.MAX_SERVED_VERSION}",
            )
        if TF_VERSION_PATTERN.fullmatch(self.tensorflow) is None:
            raise FleetArgumentError(
                f"fleet key TensorFlow version {echo(self.tensorflow)} is not a version string",
                fix="pass tf.__version__ (digits, letters, '.', '+', '-')",
            )
        if SLUG_PATTERN.fullmatch(self.slug) is None:
            raise FleetArgumentError(
                f"fleet key device slug {echo(self.slug)} is not a slug",
                fix="pass converter.BuildDevice.slug (lower-case letters, digits, '.', '-')",
            )

    @classmethod
    def in_namespace(cls, model: str, served: int, namespace: str) -> FleetKey:
        """The key for ``namespace`` as :func:`converter.engine_namespace` writes it
        (``tf-<version>/<slug>``)."""
        parts = namespace.split("/")
        if len(parts) != 2 or not parts[0].startswith("tf-"):
            raise FleetArgumentError(
                f"engine namespace {echo(namespace)} is not 'tf-<version>/<slug>'",
                fix="pass converter.engine_namespace(device)",
            )
        return cls(model, served, parts[0].removeprefix("tf-"), parts[1])

    @property
    def namespace(self) -> str:
        """``tf-<version>/<slug>``: the engine namespace this key is built for."""
        return f"tf-{self.tensorflow}/{self.slug}"

    @property
    def path(self) -> PurePosixPath:
        """The key's directory relative to the store's root."""
        return PurePosixPath(KEYS_DIR, f"tf-{self.tensorflow}", self.slug, self.model,
                             str(self.served))

    def describe(self) -> str:
        """``model 'm' version 3000 (incoming 3) for tf-2.21.0/cpu-x``, for messages."""
        return f"model {self.model!r} {numbering.describe(self.served)} for {self.namespace}"

    @classmethod
    def from_path(cls, relative: PurePosixPath) -> FleetKey | None:
        """The key whose :attr:`path` is ``relative``; None when it is not one (a key's path
        is its one spelling: a padded version or an odd name is no key)."""
        parts = relative.parts
        if len(parts) != 5 or parts[0] != KEYS_DIR or not parts[1].startswith("tf-"):
            return None
        served = numbering.served_version_from_name(parts[4])
        if served is None:
            return None
        try:
            return cls(parts[3], served, parts[1].removeprefix("tf-"), parts[2])
        except FleetArgumentError:
            return None
