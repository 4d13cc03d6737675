"""One definition per setting: its default, its parser (bounds included) and its flag.

A field of :class:`~sidecar.config.settings.Settings` or
:class:`~sidecar.config.settings.ModelPolicy` is declared once, with :func:`setting`;
the TOML keys, the ``TFTRT_SIDECAR_<FIELD>`` variables, the command-line flags with their
help, the admin API's policy overrides and their wire mapping are all read from here, so
adding a field is one declaration (and, for a policy field, its line in the .proto).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

from sidecar.config.values import PathParser, ValueParser

_T = TypeVar("_T")

_SPEC: Final = "sidecar.config.schema"
"""The key of a field's :class:`FieldSpec` in its ``dataclasses.field`` metadata."""


@dataclass(frozen=True)
class Flag:
    """The command-line flag that sets a field."""

    name: str
    """As typed, e.g. ``--incoming``."""

    metavar: str | None
    """What the flag takes, e.g. ``DIR``; None: a switch that sets True."""

    help: str
    """Help text; ``{default}`` stands for the field's default."""

    @property
    def dest(self) -> str:
        """argparse's name for the flag's value (``--engine-cache`` -> ``engine_cache``)."""
        return self.name.removeprefix("--").replace("-", "_")


@dataclass(frozen=True)
class FieldSpec:
    """How one field is given and checked."""

    name: str
    """The field's name: its TOML key and, upper-cased, its environment variable's tail."""

    default: object
    """The field's default value."""

    parse: ValueParser
    """Turns a raw value (TOML, environment, flag, admin API) into the field's value, or
    raises ConfigError naming the field, the value, where it came from and the fix."""

    flag: Flag | None
    """Its command-line flag; None: not a flag (policy fields)."""

    def from_config_file(self, value: object, directory: Path) -> object:
        """``value`` as the config file in ``directory`` gives it: a relative local path
        is taken from the file's directory, as a reader of the file expects."""
        if isinstance(self.parse, PathParser):
            return self.parse.from_config_file(value, directory)
        return value

    def shown_default(self) -> str:
        """The default as help text shows it (``10`` for ``10.0``)."""
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return str(self.default)


def setting(
    default: _T, parse: ValueParser, flag: str | None = None, metavar: str | None = None,
    help: str = "",
) -> _T:
    """Declare a settings field: ``default``, its ``parse``-r and, for a top-level setting,
    its ``flag`` (taking ``metavar``, or a switch when None) with its ``help``."""
    spec = FieldSpec("", default, parse, None if flag is None else Flag(flag, metavar, help))
    field: Any = dataclasses.field(default=default, metadata={_SPEC: spec})
    return field


def field_specs(cls: type) -> Mapping[str, FieldSpec]:
    """The declared fields of the dataclass ``cls`` (those made with :func:`setting`),
    by name, in declaration order."""
    return MappingProxyType({
        field.name: dataclasses.replace(field.metadata[_SPEC], name=field.name)
        for field in dataclasses.fields(cls) if _SPEC in field.metadata
    })
