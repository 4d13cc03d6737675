"""Errors raised by the recorder: each a :class:`~sidecar.base.errors.SidecarError`.

`TapError` is the recorder's branch of the sidecar's hierarchy (named, like
``--tap-listen``, for the traffic it records). `TapSettingsError` is a user error (fix
the setting); `TapStartError` means the recorder could not start serving, usually
because its listen address is taken (pick another port or stop whatever holds it).
Errors of proxied calls are never raised: they go back to the client with the upstream's
status code and details.
"""

from __future__ import annotations

from sidecar.base.errors import SidecarError, UserError


class TapError(SidecarError):
    """Root of every error the recorder raises."""


class TapSettingsError(TapError, UserError, ValueError):
    """A tap setting is invalid; the message names the field and the fix."""


class TapStartError(TapError, UserError):
    """The tap could not start serving (usually: the listen address is taken)."""


class UnparsableRequestError(TapError, UserError):
    """A mirrored request could not be parsed for recording (the client's call, which
    Envoy forwarded, is not affected)."""
