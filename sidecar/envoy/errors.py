"""Errors of the Envoy front: each says what was wrong and what to change."""

from __future__ import annotations

from sidecar.base.errors import UserError


class EnvoyBinaryError(UserError):
    """The Envoy binary is missing, does not run, or is not the pinned release."""


class EnvoyConfigError(UserError):
    """Envoy refused the configuration generated from the settings."""
