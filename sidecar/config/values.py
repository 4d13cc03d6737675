"""Parsers that turn one raw setting (from TOML, the environment or a flag) into its typed value.

Each raises :class:`~sidecar.base.errors.ConfigError` naming the field, the bad value,
where it came from and the fix.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final

from sidecar.base.errors import ConfigError
from sidecar.config.address import Address

ValueParser = Callable[[object, str, str], object]
"""``parse(value, field, source) -> typed value``; raises ConfigError."""

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_bool(value: object, field: str, source: str) -> bool:
    """A boolean; strings accept true/false, yes/no, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise ConfigError(
        field=field, value=value, source=source,
        problem="is not a boolean",
        fix=f"set {field} to true or false",
    )


def positive_int_parser(at_most: int) -> ValueParser:
    """A parser for a whole number from 1 to ``at_most`` (the bound keeps a typo such as
    ``4000`` for ``4`` from running away)."""
    return whole_number_parser(at_least=1, at_most=at_most)


def whole_number_parser(*, at_least: int, at_most: int) -> ValueParser:
    """A parser for a whole number from ``at_least`` to ``at_most``."""

    def parse_whole_number(value: object, field: str, source: str) -> int:
        number = _as_int(value)
        if number is None or not at_least <= number <= at_most:
            raise ConfigError(
                field=field, value=value, source=source,
                problem=f"is not a whole number of at least {at_least} and at most {at_most}",
                fix=f"set {field} to a whole number from {at_least} to {at_most}, e.g. "
                f"{max(at_least, min(4, at_most))}",
            )
        return number

    return parse_whole_number


def rate_parser() -> ValueParser:
    """A parser for a rate per second, 0 or more (0 usually turns the limit off)."""

    def parse_rate(value: object, field: str, source: str) -> float:
        return _at_least_zero(value, field, source, "a number of calls per second",
                              f"set {field} to e.g. 100, or 0 to turn it off")

    return parse_rate


def seconds_parser(*, allow_zero: bool) -> ValueParser:
    """A parser for a finite number of seconds, >= 0 or > 0."""
    lowest = "0" if allow_zero else "more than 0"

    def parse_seconds(value: object, field: str, source: str) -> float:
        number = _as_float(value)
        if number is None or number < 0 or (number == 0 and not allow_zero):
            raise ConfigError(
                field=field, value=value, source=source,
                problem=f"is not a number of seconds of at least {lowest}",
                fix=f"set {field} to a number of seconds, {lowest} or more, e.g. 5",
            )
        return number

    return parse_seconds


def parse_share(value: object, field: str, source: str) -> float:
    """A share from 0 to 1 (0.8 is 80 %)."""
    number = _as_float(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise ConfigError(
            field=field, value=value, source=source,
            problem="is not a share between 0 and 1",
            fix=f"set {field} to a number from 0 to 1, e.g. 0.8 for 80 %",
        )
    return number


def parse_tolerance(value: object, field: str, source: str) -> float:
    """A scaled-error bound: a finite number of at least 0."""
    return _at_least_zero(value, field, source, "a scaled error", f"set {field} to e.g. 0.05")


def optional_tolerance_parser() -> ValueParser:
    """A parser for a scaled-error bound as :func:`parse_tolerance` reads it, or None when
    empty or None (the bound then follows the precision)."""

    def parse_optional_tolerance(value: object, field: str, source: str) -> float | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return _at_least_zero(value, field, source, "a scaled error",
                              f"set {field} to e.g. 0.05, or to an empty string for the "
                              "tolerance of the precision the version computes in")

    return parse_optional_tolerance


def _at_least_zero(value: object, field: str, source: str, what: str, fix: str) -> float:
    """``value`` as a finite number of at least 0, or ConfigError saying it is not ``what``."""
    number = _as_float(value)
    if number is None or number < 0:
        raise ConfigError(field=field, value=value, source=source,
                          problem=f"is not {what} of at least 0", fix=fix)
    return number


def choice_parser(choices: Sequence[str], *, upper: bool) -> ValueParser:
    """A parser for one of ``choices``, compared case-insensitively."""

    def parse_choice(value: object, field: str, source: str) -> str:
        if isinstance(value, str):
            normal = value.strip().upper() if upper else value.strip().lower()
            if normal in choices:
                return normal
        raise ConfigError(
            field=field, value=value, source=source,
            problem="is not a known choice",
            fix=f"set {field} to one of {', '.join(repr(c) for c in choices)}",
        )

    return parse_choice


def batch_sizes_parser(at_most: int) -> ValueParser:
    """A parser for distinct batch sizes from 1 to ``at_most``, from a list or a
    comma-separated string; sorted."""

    def parse_batch_sizes(value: object, field: str, source: str) -> tuple[int, ...]:
        items: list[object]
        if isinstance(value, str):
            items = [part for part in value.replace(" ", ",").split(",") if part]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            items = []
        numbers = [_as_int(item) for item in items]
        valid = [n for n in numbers if n is not None and 1 <= n <= at_most]
        if not items or len(valid) != len(items) or len(set(valid)) != len(valid):
            raise ConfigError(
                field=field, value=value, source=source,
                problem=f"is not a list of distinct whole numbers from 1 to {at_most}",
                fix=f"set {field} to e.g. [1, 8] (in TOML) or 1,8 (environment, flags)",
            )
        return tuple(sorted(valid))

    return parse_batch_sizes


_URL_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
"""A URL's scheme (RFC 3986) followed by ``://``. ``C:/models``, ``./s3://x`` or
``models:v2`` do not match: they are legal local paths."""


@dataclasses.dataclass(frozen=True, eq=False)
class PathParser:
    """A parser for a local path, made absolute (a relative one is taken from the current
    directory), or for a URL of a scheme the setting supports.

    A URL of any other scheme is refused: taken as a path, ``s3://fleet/p`` would
    silently become the local directory ``./s3:/fleet/p``.
    """

    optional: bool = False
    """Whether an empty value means None (not used)."""

    urls: Mapping[str, ValueParser] = dataclasses.field(
        default_factory=lambda: MappingProxyType({}))
    """Scheme (lower case, e.g. ``s3``) -> the parser of this setting's URLs of it."""

    def __call__(self, value: object, field: str, source: str) -> object:
        """The path (None when optional and empty), or the URL as its scheme's parser
        reads it; ConfigError for anything else."""
        if isinstance(value, Path):
            value = os.fspath(value)
        if self.optional and (value is None or (isinstance(value, str) and not value.strip())):
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                field=field, value=value, source=source,
                problem="is not a directory or file path",
                fix=f"set {field} to a path such as /models/serving",
            )
        scheme = url_scheme(value)
        if scheme is None:
            return Path(os.path.abspath(value))
        if scheme in self.urls:
            return self.urls[scheme](value, field, source)
        raise ConfigError(
            field=field, value=value, source=source,
            problem=f"is a URL ({scheme}://), which {field} does not take: it takes "
            f"{self.supported()}",
            fix=f"set {field} to a local path; for remote storage, mount it as a volume and "
            "give its mount point, e.g. /mnt/store",
        )

    def supported(self) -> str:
        """What the setting takes, as an error message names it."""
        schemes = ", ".join(f"{scheme}://" for scheme in sorted(self.urls))
        return f"a local path or a URL ({schemes})" if schemes else "a local path only"

    def from_config_file(self, value: object, directory: Path) -> object:
        """``value`` as a config file in ``directory`` gives it: a relative local path is
        taken from that directory; anything else is left for :meth:`__call__` to judge."""
        if isinstance(value, str) and value and url_scheme(value) is None:
            return os.fspath(directory / value)
        return value


def url_scheme(value: str) -> str | None:
    """The URL scheme ``value`` starts with, lower-cased; None for a local path."""
    match = _URL_SCHEME.match(value.lstrip())
    return match.group(1).lower() if match else None


parse_path: Final = PathParser()
"""A non-empty local path, made absolute."""

parse_optional_path: Final = PathParser(optional=True)
"""A local path made absolute, or None when empty (not used)."""


def parse_address(value: object, field: str, source: str) -> Address:
    """HOST:PORT (port 1-65535; an IPv6 host in brackets), as :meth:`Address.parse` reads
    it."""
    return Address.parse(value, field, source)


def parse_optional_address(value: object, field: str, source: str) -> Address | None:
    """HOST:PORT as :func:`parse_address` reads it, or None when empty (off)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return Address.parse(value, field, source, can_be_off=True)


def parse_name(value: object, field: str, source: str) -> str:
    """A non-empty name without spaces or '/' (the fleet store checks the rest)."""
    if isinstance(value, str) and value.strip() and "/" not in value and (
            not any(c.isspace() for c in value.strip())):
        return value.strip()
    raise ConfigError(
        field=field, value=value, source=source,
        problem="is not a name (non-empty, no spaces, no '/')",
        fix=f"set {field} to e.g. the pod name, sidecar-0",
    )


def parse_text(value: object, field: str, source: str) -> str:
    """Non-empty text (surrounding spaces dropped)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ConfigError(
        field=field, value=value, source=source, problem="is empty or not text",
        fix=f"set {field} to a non-empty string, e.g. serving_default",
    )


def parse_words(value: object, field: str, source: str) -> tuple[str, ...]:
    """One or more distinct non-empty words, from a list or a comma-separated string."""
    items = (value.split(",") if isinstance(value, str)
             else list(value) if isinstance(value, (list, tuple)) else [])
    words = tuple(item.strip() for item in items if isinstance(item, str))
    if not words or len(words) != len(items) or not all(words) or len(set(words)) != len(words):
        raise ConfigError(
            field=field, value=value, source=source,
            problem="is not a list of distinct non-empty words",
            fix=f"set {field} to e.g. [\"serve\"] (in TOML) or serve,gpu (environment, flags)",
        )
    return words


def parse_marker_file(value: object, field: str, source: str) -> str | None:
    """A plain file name, or None when empty (no marker: completeness by settling)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and "/" not in value and value.strip() not in {".", ".."}:
        return value.strip()
    raise ConfigError(
        field=field, value=value, source=source,
        problem="is not a plain file name",
        fix=f"set {field} to a file name without '/', e.g. READY, or to an empty string",
    )


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _as_float(value: object) -> float | None:
    """A finite number from a number or its text; None otherwise."""
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    return number if number is not None and math.isfinite(number) else None
