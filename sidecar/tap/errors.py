"""Errors raised by the tap.

`TapError` is the root. `TapSettingsError` is a user error (fix the setting);
`TapStartError` means the listen address could not be bound (pick another port or
stop whatever holds it). Errors of proxied calls are never raised: they go back to
the client with the upstream's status code and details.
"""

from __future__ import annotations


class TapError(Exception):
    """Root of every error the tap raises."""


class TapSettingsError(TapError, ValueError):
    """A tap setting is invalid; the message names the field and the fix."""


class TapStartError(TapError):
    """The tap could not start serving (usually: the listen address is taken)."""


class UnparsableRequestError(TapError):
    """A forwarded request could not be parsed for recording (it was still forwarded)."""
