"""The command-line flags that set the sidecar's settings (for ``tftrt-sidecar run``).

Each flag, its help and the field it sets come from the field's declaration in its
section of :class:`~sidecar.config.settings.Settings`; ``--help`` lists them by section.
"""

from __future__ import annotations

import argparse
from types import MappingProxyType
from typing import Final

from sidecar.config import defaults
from sidecar.config.schema import FieldSpec, Flag, section_specs
from sidecar.config.settings import Settings

_SECTIONS: Final = section_specs(Settings)

FLAGS: Final = MappingProxyType({
    spec.flag.dest: (spec, spec.flag)
    for section in _SECTIONS.values() for spec in section.fields.values()
    if spec.flag is not None
})
"""argparse destination -> (the settings field's spec, its flag)."""


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and a flag per setting to ``parser``.

    Every flag defaults to None (not given) so that the config file and the
    environment apply unless a flag overrides them.
    """
    parser.add_argument(
        "--config", default=None, metavar="FILE",
        help=f"TOML config file (else ${defaults.ENV_CONFIG_FILE}, else built-in defaults)",
    )
    for section in _SECTIONS.values():
        group = parser.add_argument_group(
            f"[{section.name}]", f"{section.summary} (the config file's [{section.name}] table)")
        for spec in section.fields.values():
            if spec.flag is not None:
                _add_flag(group, spec, spec.flag)


def _add_flag(parser: argparse._ActionsContainer, spec: FieldSpec, flag: Flag) -> None:
    text = flag.help.format(default=spec.shown_default())
    if flag.metavar is None:
        parser.add_argument(flag.name, action="store_const", const=True, default=None, help=text)
    else:
        parser.add_argument(flag.name, default=None, metavar=flag.metavar, help=text)


def build_argument_parser(prog: str = "tftrt-sidecar run") -> argparse.ArgumentParser:
    """A parser with only the settings flags, for ``run`` and for tests."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Convert, warm up and publish model versions for TF Serving."
    )
    add_settings_arguments(parser)
    return parser
