"""One definition per setting: its default, its parser (bounds included) and its flag.

A field of a settings section (:class:`~sidecar.config.settings.Settings` holds one per
concern) or of :class:`~sidecar.config.settings.ModelPolicy` is declared once, with
:func:`setting`; the TOML keys, the ``TFTRT_SIDECAR_<FIELD>`` variables, the command-line
flags with their help, the admin API's policy overrides and their wire mapping are all read
from here, so adding a field is one declaration (and, for a policy field, its line in the
.proto).

How a section's field is named (:func:`section`): ``settings.<section>.<field>`` in code,
``<field>`` in the config file's ``[<section>]`` table, and a flat name, unique over all
sections, for a top-level TOML key and ``TFTRT_SIDECAR_<FLAT NAME>``: the section's prefix
(``<section>_`` unless the section names another) followed by the field's name, or the
``flat=`` its declaration gives to keep a name older than the sections.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

from sidecar.base.errors import ConfigError
from sidecar.config.values import PathParser, ValueParser

_T = TypeVar("_T")

_SPEC: Final = "sidecar.config.schema"
"""The key of a field's :class:`FieldSpec` in its ``dataclasses.field`` metadata."""

_SECTION: Final = "sidecar.config.schema.section"
"""The key of a section's flat-name prefix in its ``dataclasses.field`` metadata."""

FieldOrigin = Callable[[str], "tuple[str, str, object] | None"]
"""``origin(field) -> (name it was given under, where, the value as given)``, or None when
the field was not given there."""

Conflict = tuple[tuple[str, ...], str, str]
"""(the fields involved, the problem, the fix) of values that do not go together, or of
one value a file check refused."""


@runtime_checkable
class Checked(Protocol):
    """Settings whose fields are checked together once their values are parsed."""

    def conflicts(self) -> Iterator[Conflict]:
        """Each problem of the values together (or of a file they name)."""
        ...


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
    """The field's name: its key in its section's TOML table (a policy's: in ``[policy]``)."""

    default: object
    """The field's default value."""

    parse: ValueParser
    """Turns a raw value (TOML, environment, flag, admin API) into the field's value, or
    raises ConfigError naming the field, the value, where it came from and the fix."""

    flag: Flag | None
    """Its command-line flag; None: not a flag (policy fields)."""

    flat: str = ""
    """Its flat name: a top-level TOML key and, upper-cased, its environment variable's
    tail (a policy field's is its name)."""

    section: str = ""
    """The section of :class:`~sidecar.config.settings.Settings` it is in; "" for a policy
    field."""

    @property
    def qualified(self) -> str:
        """``<section>.<field>``, as code reads it from the settings."""
        return f"{self.section}.{self.name}" if self.section else self.name

    def from_config_file(self, value: object, directory: Path) -> object:
        """``value`` as the config file in ``directory`` gives it: a relative local path
        is taken from the file's directory, as a reader of the file expects."""
        if isinstance(self.parse, PathParser):
            return self.parse.from_config_file(value, directory)
        return value

    def shown_default(self) -> str:
        """The default as help text shows it (``10`` for ``10.0``, ``a,b`` for a tuple)."""
        if isinstance(self.default, float):
            return f"{self.default:g}"
        if isinstance(self.default, tuple):
            return ",".join(map(str, self.default))
        return str(self.default)


@dataclass(frozen=True)
class SectionSpec:
    """One section of the settings: its dataclass and its declared fields."""

    name: str
    """Its attribute on the settings and its TOML table, e.g. ``fleet``."""

    type: type
    """The section's dataclass."""

    fields: Mapping[str, FieldSpec]
    """Its declared fields by name, in declaration order, flat names filled in."""

    @property
    def summary(self) -> str:
        """The first sentence of the section's docstring (``--help`` heads its flags with
        it)."""
        return " ".join((self.type.__doc__ or "").split()).partition(". ")[0].rstrip(".")


def setting(
    default: _T, parse: ValueParser, flag: str | None = None, metavar: str | None = None,
    help: str = "", *, flat: str | None = None,
) -> _T:
    """Declare a settings field: ``default``, its ``parse``-r and its ``flag`` (taking
    ``metavar``, or a switch when None) with its ``help``; ``flat`` replaces the flat name
    the section's prefix gives (only to keep a name older than the sections)."""
    spec = FieldSpec("", default, parse, None if flag is None else Flag(flag, metavar, help),
                     flat or "")
    field: Any = dataclasses.field(default=default, metadata={_SPEC: spec})
    return field


def section(kind: Callable[[], _T], prefix: str | None = None) -> _T:
    """Declare a section of the settings, of the dataclass ``kind``; its fields' flat names
    are ``prefix`` + their name (``prefix`` None: ``<section>_``)."""
    field: Any = dataclasses.field(default_factory=kind, metadata={_SECTION: prefix})
    return field


def field_specs(cls: type) -> Mapping[str, FieldSpec]:
    """The declared fields of the dataclass ``cls`` (those made with :func:`setting`),
    by name, in declaration order; a field's flat name is its name unless declared."""
    return MappingProxyType({name: dataclasses.replace(spec, flat=spec.flat or name)
                             for name, spec in _declared(cls)})


def section_specs(cls: type) -> Mapping[str, SectionSpec]:
    """The sections of the dataclass ``cls`` (those made with :func:`section`), by name,
    in declaration order."""
    sections: dict[str, SectionSpec] = {}
    for field in dataclasses.fields(cls):
        if _SECTION not in field.metadata:
            continue
        prefix = field.metadata[_SECTION]
        prefix = f"{field.name}_" if prefix is None else prefix
        kind = field.default_factory
        assert isinstance(kind, type), f"section {field.name} is not a dataclass"
        sections[field.name] = SectionSpec(field.name, kind, MappingProxyType({
            name: dataclasses.replace(spec, section=field.name, flat=spec.flat or prefix + name)
            for name, spec in _declared(kind)}))
    return MappingProxyType(sections)


def _declared(cls: type) -> Iterator[tuple[str, FieldSpec]]:
    for field in dataclasses.fields(cls):
        if _SPEC in field.metadata:
            yield field.name, dataclasses.replace(field.metadata[_SPEC], name=field.name)


def check_conflicts(checked: Checked, origin: FieldOrigin, unset_source: str,
                    unset_name: Callable[[str], str] = str) -> None:
    """Raise ConfigError for the first of ``checked``'s conflicts, naming its first field
    that was given (``origin``), else its first field (``unset_name(field)``, from
    ``unset_source``), with the value, the problem and the fix."""
    for fields, problem, fix in checked.conflicts():
        given = [found for found in map(origin, fields) if found is not None]
        name, source, value = (given[0] if given else
                               (unset_name(fields[0]), unset_source,
                                getattr(checked, fields[0])))
        raise ConfigError(field=name, value=value, source=source, problem=problem, fix=fix)
