"""The one rule for model names: which incoming directories are models the sidecar serves.

TF Serving accepts any string as a model name, but a name also becomes a
directory in the serving base, a ``name`` in TF Serving's model config, a
``/v1/models/<name>`` URL, a Prometheus label, an admin API field and a CLI
argument. The sidecar therefore serves only names from a documented safe set
(:data:`MODEL_NAME_PATTERN`): ASCII, so two Unicode spellings that look alike
(NFC and NFD ``café``) or bytes that are not UTF-8 at all never become two
models or a config file TF Serving cannot read; no spaces, so a name is one
shell word and one URL segment without quoting. A model directory outside the
set is refused at discovery with :func:`model_name_problem`'s reason, and the
admin API refuses the same names, so every layer agrees on what a model is.

Hidden and temporary names (``.x``, ``_x``, ``x.tmp``, ``x~``) are work in
progress by convention and are ignored without a word.
"""

from __future__ import annotations

import re
from typing import Final

from sidecar.base.errors import echo

MODEL_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A model name: an ASCII letter or digit, then up to 127 ASCII letters, digits, '.', '_'
or '-'."""

MODEL_NAME_RULE: Final = (
    "use 1-128 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
)
""":data:`MODEL_NAME_PATTERN` in words, for error messages and documentation."""


def is_ignored_name(name: str) -> bool:
    """Whether ``name`` is hidden or temporary (never a model, never worth a warning)."""
    return not name or name.startswith((".", "_")) or name.endswith((".tmp", "~"))


def model_name_problem(name: str) -> str | None:
    """None if ``name`` is a model name the sidecar serves, else what is wrong with it."""
    if is_ignored_name(name):
        return f"{echo(name)} is a hidden or temporary name"
    if MODEL_NAME_PATTERN.fullmatch(name) is None:
        return (f"{echo(name)} is not a model name the sidecar serves ({MODEL_NAME_RULE}; "
                "names become paths, URLs, metric labels and CLI arguments)")
    return None


def is_model_name(name: str) -> bool:
    """Whether ``name`` is a model name the sidecar serves."""
    return model_name_problem(name) is None
