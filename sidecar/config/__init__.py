"""The sidecar's settings: typed dataclasses loaded from defaults, TOML, environment and flags."""

from __future__ import annotations

from sidecar.config.address import Address
from sidecar.config.flags import add_settings_arguments, build_argument_parser
from sidecar.config.loading import load_settings
from sidecar.config.settings import ModelPolicy, Settings

__all__ = [
    "Address",
    "ModelPolicy",
    "Settings",
    "add_settings_arguments",
    "build_argument_parser",
    "load_settings",
]
