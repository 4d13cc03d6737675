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

from sidecar.config import ModelPolicy
from sidecar.config.loading import POLICY_PARSERS
from sidecar.errors import ConfigError

POLICY_KEYS: Final = tuple(POLICY_PARSERS)
"""The policy fields an override may set."""


@dataclass(frozen=True)
class PolicyOverrides:
    """Changes to a model's configured policy; None leaves a field as configured."""

    backend: str | None = None
    """Engine compiler: "auto", "xla" or "tensorrt"."""

    precision: str | None = None
    """"FP32", "FP16" or "INT8" (tensorrt backend)."""

    max_engines: int | None = None
    """Most prebuilt input shapes per segment (1-1000)."""

    minimum_segment_size: int | None = None
    """Segments with fewer ops stay native."""

    build_at_runtime: bool | None = None
    """Whether serving may compile shapes that were not prebuilt."""

    keep_versions: int | None = None
    """How many newest published versions stay in the serving base."""

    default_batch_sizes: tuple[int, ...] | None = None
    """Batch sizes to build for when no request shapes are known."""

    rebuild_below_coverage: float | None = None
    """Coverage share under which a rebuild is due (0 turns rebuilds off)."""

    rebuild_after_seconds: float | None = None
    """How long coverage must stay low before a rebuild."""

    rebuild_min_requests: int | None = None
    """Requests the window must hold before coverage is judged."""

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
        return cls(**cast(dict[str, Any], parsed))

    def as_dict(self) -> dict[str, object]:
        """The fields that are set, as JSON-compatible values."""
        found: dict[str, object] = {}
        for key in POLICY_KEYS:
            value = getattr(self, key)
            if value is not None:
                found[key] = list(value) if isinstance(value, tuple) else value
        return found

    @property
    def empty(self) -> bool:
        """True when nothing is overridden."""
        return not self.as_dict()

    def merged_with(self, newer: PolicyOverrides) -> PolicyOverrides:
        """These overrides with every field ``newer`` sets replaced by its value."""
        return dataclasses.replace(self, **cast(dict[str, Any], newer.as_dict_typed()))

    def as_dict_typed(self) -> dict[str, object]:
        """The fields that are set, with their typed values (tuples stay tuples)."""
        return {key: getattr(self, key) for key in POLICY_KEYS if getattr(self, key) is not None}

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

