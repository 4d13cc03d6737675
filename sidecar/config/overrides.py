"""Policy overrides: a model's persisted changes to its configured policy, checked like config.

The config file's own parsers (bounds included) check every value, and the policy they
give is checked whole by the config's `ModelPolicy.check`, so an override is accepted
exactly when the config file would accept the policy it makes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from sidecar.base.errors import ConfigError
from sidecar.config import ModelPolicy
from sidecar.config.loading import POLICY_PARSERS

POLICY_KEYS: Final = tuple(POLICY_PARSERS)
"""The policy fields an override may set: every field of `ModelPolicy`, in its order."""


@dataclass(frozen=True)
class PolicyOverrides:
    """Changes to a model's configured policy: a value for some fields of `ModelPolicy`,
    the others left as configured.

    Read a field as an attribute (``overrides.max_engines``): its value, or None when it
    is not overridden. Build one with :meth:`parse`, which checks every value.
    """

    given: tuple[tuple[str, object], ...] = ()
    """(field, typed value) of each overridden field, in `ModelPolicy`'s order."""

    def __getattr__(self, name: str) -> object:
        # Only for the policy's fields: any other missing name is a real AttributeError.
        if name not in POLICY_PARSERS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return self.as_dict_typed().get(name)

    @classmethod
    def parse(cls, raw: Mapping[str, object], source: str) -> PolicyOverrides:
        """Check and convert raw values (strings from a CLI, JSON values from the state file).

        Raises ConfigError naming the key, the value, ``source`` and the fix.
        """
        parsed: dict[str, object] = {}
        for key, value in raw.items():
            parser = POLICY_PARSERS.get(key)
            if parser is None:
                raise ConfigError(
                    field=key, value=None, source=source, problem="is not a policy field",
                    fix=f"use one of {', '.join(POLICY_KEYS)}",
                )
            parsed[key] = parser(value, key, source)
        return cls._of(parsed)

    @classmethod
    def _of(cls, typed: Mapping[str, object]) -> PolicyOverrides:
        return cls(tuple((key, typed[key]) for key in POLICY_KEYS if key in typed))

    def as_dict(self) -> dict[str, object]:
        """The fields that are set, as JSON-compatible values."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in self.given}

    @property
    def empty(self) -> bool:
        """True when nothing is overridden."""
        return not self.given

    def merged_with(self, newer: PolicyOverrides) -> PolicyOverrides:
        """These overrides with every field ``newer`` sets replaced by its value."""
        return self._of({**self.as_dict_typed(), **newer.as_dict_typed()})

    def as_dict_typed(self) -> dict[str, object]:
        """The fields that are set, with their typed values (tuples stay tuples)."""
        return dict(self.given)

    def apply(self, base: ModelPolicy) -> ModelPolicy:
        """``base`` with these overrides applied."""
        return dataclasses.replace(base, **cast(dict[str, Any], self.as_dict_typed()))

    def checked_on(self, base: ModelPolicy, source: str, prefix: str = "") -> ModelPolicy:
        """``base`` with these overrides applied, checked whole as the config file checks a
        policy; the ConfigError names the override at fault (``prefix`` + field) and
        ``source``."""
        given = self.as_dict()
        effective = self.apply(base)
        effective.check(lambda field: (prefix + field, source, given[field])
                        if field in given else None)
        return effective


PolicySource = Callable[[str], ModelPolicy]
"""``policy_for(model)``: the configured policy of a model (``Settings.policy_for``)."""

