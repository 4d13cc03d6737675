"""Build :class:`Settings` from defaults < TOML file < environment < flags, validating once."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from sidecar.base.errors import ConfigError
from sidecar.config import defaults, values
from sidecar.config.flags import FLAGS
from sidecar.config.schema import (
    Checked,
    FieldOrigin,
    FieldSpec,
    SectionSpec,
    check_conflicts,
    field_specs,
    section_specs,
)
from sidecar.config.settings import ModelPolicy, Settings
from sidecar.tfserving.model_names import MODEL_NAME_RULE, model_name_problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_SECTIONS: Final = section_specs(Settings)
"""The sections of the settings, by name (their TOML tables)."""

SETTINGS_BY_FLAT_NAME: Final[Mapping[str, FieldSpec]] = MappingProxyType({
    spec.flat: spec for section in _SECTIONS.values() for spec in section.fields.values()})
"""Every section's fields, by flat name: a top-level TOML key, ``TFTRT_SIDECAR_<NAME>``."""

POLICY_PARSERS: Final[Mapping[str, values.ValueParser]] = MappingProxyType(
    {name: spec.parse for name, spec in field_specs(ModelPolicy).items()}
)
"""Policy field -> its parser, bounds included; the admin API checks overrides with the
same table, and both check whole policies with `ModelPolicy.check`."""


@dataclasses.dataclass(frozen=True)
class _Raw:
    """One raw value, the name it was given under and where it came from."""

    value: object
    key: str
    source: str


_Layer = dict[str, _Raw]
"""Raw values by field: ``<section>.<field>`` for a setting, the field for a policy."""


def load_settings(
    flags: argparse.Namespace | Mapping[str, object] | None,
    environ: Mapping[str, str],
    config_path: os.PathLike[str] | str | None = None,
) -> Settings:
    """Load and validate the settings: every value, every section's fields together and
    the files they name (the admin token is read here), so nothing after this checks
    them again.

    ``flags`` holds parsed command-line flags (see
    :func:`~sidecar.config.flags.add_settings_arguments`; None means not given),
    ``environ`` the environment (``TFTRT_SIDECAR_<FIELD>``). The config file is
    ``config_path`` if given, else ``--config``, else ``$TFTRT_SIDECAR_CONFIG``.
    Per-model ``[models.<name>]`` sections override the final default policy.
    Raises ConfigError naming the field, the value, its source and the fix.
    """
    flag_values = dict(vars(flags) if isinstance(flags, argparse.Namespace) else (flags or {}))
    if not isinstance(flags, argparse.Namespace):  # a Namespace also holds other commands' flags
        for key in sorted(flag_values.keys() - {"config", *FLAGS}):
            _unknown(key, ["config", *FLAGS], "the flags given by their argparse names")
    path = config_path or flag_values.get("config") or environ.get(defaults.ENV_CONFIG_FILE)

    top: _Layer = {}
    policy: _Layer = {}
    per_model: dict[str, _Layer] = {}
    if path:
        _read_toml(Path(os.fspath(str(path))), top, policy, per_model)
    _read_environment(environ, top, policy)
    _read_flags(flag_values, top)

    default_policy = _build_policy(ModelPolicy(), policy)
    model_policies = {
        name: _build_policy(default_policy, overrides) for name, overrides in per_model.items()
    }
    sections = {name: _build_section(section, top) for name, section in _SECTIONS.items()}
    sections["admin"] = sections["admin"].with_token(_origin(top, "admin."))
    return Settings(
        default_policy=default_policy,
        model_policies=MappingProxyType(model_policies),
        **sections,
    )


def _read_toml(path: Path, top: _Layer, policy: _Layer, per_model: dict[str, _Layer]) -> None:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            field="config", value=path, source="--config or $" + defaults.ENV_CONFIG_FILE,
            problem=f"cannot be read: {exc.strerror or exc}",
            fix="point --config at an existing, readable TOML file",
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            field="config", value=path, source=str(path),
            problem=f"is not valid TOML: {exc}",
            fix="correct the TOML syntax at the position shown",
        ) from exc

    source = f"config file {path}"
    given: _Layer = {}
    for key, value in document.items():
        if key in SETTINGS_BY_FLAT_NAME:
            _put(given, SETTINGS_BY_FLAT_NAME[key], _Raw(value, key, source), path.parent)
        elif key in _SECTIONS:
            fields = _SECTIONS[key].fields
            for name, item in _table(value, key, source).items():
                if name not in fields:
                    _unknown(f"{key}.{name}", [f"{key}.{known}" for known in fields], source)
                _put(given, fields[name], _Raw(item, f"{key}.{name}", source), path.parent)
        elif key == "policy":
            _read_policy_table(value, "policy", source, policy)
        elif key == "models":
            for model, table in _table(value, "models", source).items():
                _check_model_name(model, source)
                layer = per_model.setdefault(model, {})
                _read_policy_table(table, f"models.{model}", source, layer)
        else:
            _unknown(key, [*SETTINGS_BY_FLAT_NAME, *_SECTIONS, "policy", "models"], source)
    top.update(given)


def _put(layer: _Layer, spec: FieldSpec, raw: _Raw, directory: Path) -> None:
    """Put a setting the config file gives into ``layer``, refusing it when the file gives
    it twice (flat and in its section's table)."""
    earlier = layer.get(spec.qualified)
    if earlier is not None:
        raise ConfigError(
            field=raw.key, value=raw.value, source=raw.source,
            problem=f"is given twice, also as {earlier.key}",
            fix=f"keep one of them: [{spec.section}] {spec.name} = ... (or {spec.flat} = ... "
            "at the top)",
        )
    layer[spec.qualified] = _Raw(spec.from_config_file(raw.value, directory), raw.key,
                                 raw.source)


def _read_policy_table(value: object, prefix: str, source: str, layer: _Layer) -> None:
    for key, item in _table(value, prefix, source).items():
        if key not in POLICY_PARSERS:
            _unknown(f"{prefix}.{key}", [f"{prefix}.{name}" for name in POLICY_PARSERS], source)
        layer[key] = _Raw(item, f"{prefix}.{key}", source)


def _read_environment(environ: Mapping[str, str], top: _Layer, policy: _Layer) -> None:
    for name, value in environ.items():
        if not name.startswith(defaults.ENV_PREFIX) or name == defaults.ENV_CONFIG_FILE:
            continue
        key = name[len(defaults.ENV_PREFIX):].lower()
        source = f"environment variable {name}"
        if key in SETTINGS_BY_FLAT_NAME:
            top[SETTINGS_BY_FLAT_NAME[key].qualified] = _Raw(value, key, source)
        elif key in POLICY_PARSERS:
            policy[key] = _Raw(value, key, source)
        else:
            fields = [*SETTINGS_BY_FLAT_NAME, *POLICY_PARSERS]
            known = [defaults.ENV_PREFIX + field.upper() for field in fields]
            _unknown(name, [*known, defaults.ENV_CONFIG_FILE], source)


def _read_flags(flag_values: Mapping[str, object], top: _Layer) -> None:
    for dest, (spec, flag) in FLAGS.items():
        value = flag_values.get(dest)
        if value is not None:
            top[spec.qualified] = _Raw(value, spec.flat, f"command-line flag {flag.name}")


def _build_section(section: SectionSpec, top: _Layer) -> Any:
    """The section with the values given for it, parsed, and checked together."""
    origin = _origin(top, f"{section.name}.")
    changes = {}
    for name, spec in section.fields.items():
        raw = top.get(spec.qualified)
        if raw is not None:
            changes[name] = spec.parse(raw.value, raw.key, raw.source)
    built = section.type(**changes)
    if isinstance(built, Checked):
        check_conflicts(built, origin, "the defaults",
                        unset_name=lambda name: section.fields[name].flat)
    return built


def _origin(layer: _Layer, prefix: str = "") -> FieldOrigin:
    """Where each field was given, as ``layer`` holds it under ``prefix`` + the field."""

    def origin(name: str) -> tuple[str, str, object] | None:
        raw = layer.get(prefix + name)
        return None if raw is None else (raw.key, raw.source, raw.value)

    return origin


def _build_policy(base: ModelPolicy, layer: _Layer) -> ModelPolicy:
    changes = {name: POLICY_PARSERS[name](raw.value, raw.key, raw.source)
               for name, raw in layer.items()}
    built = dataclasses.replace(base, **changes)  # type: ignore[arg-type]
    built.check(_origin(layer))
    return built


def _table(value: object, key: str, source: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(
            field=key, value=value, source=source, problem="is not a table",
            fix=f"write it as a TOML table, e.g. [{key}]",
        )
    return value


def _check_model_name(model: str, source: str) -> None:
    if model_name_problem(model) is not None:
        raise ConfigError(
            field="models", value=model, source=source,
            problem="is not a model name the sidecar serves",
            fix=f"{MODEL_NAME_RULE}; name the section after the model's directory, "
            "e.g. [models.resnet]",
        )


def _unknown(key: str, known: Iterable[str], source: str) -> None:
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        field=key, value=None, source=source, problem="is not a known setting",
        fix=f"{hint}known settings: {', '.join(known)}",
    )
