"""What the command-line programs share: TensorFlow kept quiet, one-line errors, the version.

TensorFlow prints C++ start-up lines (oneDNN, CUDA drivers, ``cuInit``) while it is
imported, before ``TF_CPP_MIN_LOG_LEVEL`` is read by the code that logs them, so the
level alone does not silence them: the import runs with standard error pointed at
``/dev/null``. Nothing here imports TensorFlow at module level, so ``--version`` and
``--help`` answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from typing import NoReturn

QUIET_LEVEL = "3"
"""``TF_CPP_MIN_LOG_LEVEL`` set by default: errors of TensorFlow's C++ side are hidden too
(its ``cuInit`` line is an error on every machine without a GPU); ours are not."""

EXIT_USAGE = 2
"""The exit status of a command-line error."""


def quiet_tensorflow(*, verbose: bool) -> None:
    """Quiet TensorFlow's C++ logging for this process and its children, then import it.

    ``verbose`` leaves TensorFlow as loud as it is by default; a ``TF_CPP_MIN_LOG_LEVEL``
    the user set is kept either way.
    """
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LEVEL)
    import_tensorflow()
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # deprecation notices
    logging.getLogger("absl").setLevel(logging.WARNING)


def import_tensorflow() -> None:
    """Import TensorFlow, discarding its start-up lines when the quiet level is in force.

    Child processes call this first: they inherit the level the parent chose.
    """
    if "tensorflow" in sys.modules:
        return
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != QUIET_LEVEL:
        importlib.import_module("tensorflow")
        return
    with _stderr_discarded():
        importlib.import_module("tensorflow")


@contextlib.contextmanager
def _stderr_discarded() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null (C++ writes there directly), then restore it."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def package_version() -> str:
    """This distribution's version, as installed."""
    try:
        return metadata.version("tftrt-sidecar")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: what was wrong and where help is."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message (see prog --help)`` and exit with status 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_version_argument(parser: argparse.ArgumentParser) -> None:
    """``--version``: print the program's name and version, and exit."""
    parser.add_argument("--version", action="version",
                        version=f"{parser.prog} {package_version()}")


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """``--verbose``: TensorFlow's own log lines, and a traceback with every error."""
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up and C++ log lines, and tracebacks")


def run_reporting_errors(
    prog: str,
    action: Callable[[], int],
    exit_codes: Sequence[tuple[type[BaseException], int]],
    *,
    verbose: bool,
) -> int:
    """Run ``action``; an exception becomes one line on standard error and an exit status.

    ``exit_codes`` maps the program's own error types (most specific first) to their
    status; anything else is a bug, status 1. ``verbose`` adds the traceback.
    """
    try:
        return action()
    except KeyboardInterrupt:
        raise
    except Exception as error:  # the one place a CLI turns any failure into a message
        status = next((code for kind, code in exit_codes if isinstance(error, kind)), None)
        if verbose:
            traceback.print_exc()
        message = " ".join(str(error).split()) or type(error).__name__
        if status is None:
            hint = "" if verbose else "; run again with --verbose for the traceback"
            print(f"{prog}: internal error ({type(error).__name__}): {message}{hint}",
                  file=sys.stderr)
            return 1
        print(f"{prog}: error: {message}", file=sys.stderr)
        return status
