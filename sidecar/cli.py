"""``tftrt-sidecar``: run the sidecar (``run``), or watch it handle a demo model (``demo``).

``main`` takes an optional ``components`` factory: every part the service runs (the
pipeline and whatever runs beside it: the tap with its shape store, the admin API, metrics)
is built there from the validated settings and handed to the service, so new flags only
add parser arguments and a feature, never changes to the loop or the jobs.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from converter.console import (
    CommandParser,
    add_verbose_argument,
    add_version_argument,
    quiet_tensorflow,
    run_reporting_errors,
)
from sidecar.base.errors import SidecarError, UserError
from sidecar.config import Settings, add_settings_arguments, load_settings

if TYPE_CHECKING:
    from sidecar.service.summary import RunSummary
    from sidecar.service.wiring import ServiceParts

ComponentsFactory = Callable[[Settings], "ServiceParts"]
"""Builds the service's parts from the validated settings (by default
:func:`sidecar.service.wiring.build_service`)."""

EXIT_OK = 0
"""Every job ended published or skipped."""

EXIT_JOB_FAILED = 3
"""The run finished, but one or more jobs ended FAILED (reasons in the journal and log)."""

EXIT_USAGE = 2
"""Bad settings or input: the message says what to change."""

EXIT_STORAGE = 1
"""The filesystem or state database refused; retrying after fixing it can succeed."""


def build_parser() -> argparse.ArgumentParser:
    """The ``tftrt-sidecar`` parser with its ``run`` and ``demo`` commands."""
    parser = CommandParser(
        prog="tftrt-sidecar",
        description="Convert, warm up and atomically publish model versions for TF Serving.",
    )
    add_version_argument(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="watch the incoming base and publish each version that lands",
        description="Watch the incoming base; convert, build, verify, warm up and publish "
        "each version into the serving base, keeping TF Serving's model config.",
    )
    add_settings_arguments(run)
    _add_log_level(run)
    demo = commands.add_parser(
        "demo", help="land a demo model in a local folder and run the sidecar once on it",
    )
    demo.add_argument(
        "--workdir", type=Path, default=Path("tftrt-sidecar-demo"), metavar="DIR",
        help="folder for incoming/, serving/, state/ and engine-cache/ "
        "(default ./tftrt-sidecar-demo)",
    )
    _add_log_level(demo)
    bootstrap = commands.add_parser(
        "envoy-bootstrap", help="write Envoy's configuration for an Envoy container",
        description="Generate Envoy's bootstrap from the same settings as run (tap, upstream, "
        "recorder, REST and Envoy addresses), check it with Envoy itself, and write it.",
    )
    add_settings_arguments(bootstrap)
    bootstrap.add_argument("--out", type=Path, required=True, metavar="FILE",
                           help="where to write the bootstrap (JSON)")
    _add_log_level(bootstrap)
    commands.add_parser(
        "admin", add_help=False,
        help="call a running sidecar's admin API (tftrt-sidecar admin --help)",
    )
    return parser


def main(
    argv: Sequence[str] | None = None, *, components: ComponentsFactory | None = None
) -> int:
    """Run ``tftrt-sidecar``; return the exit status (see the ``EXIT_*`` constants)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["admin"]:  # the admin client has its own parser, and no TensorFlow
        from sidecar.client.cli import main as admin_main

        return admin_main(arguments[1:])
    args = build_parser().parse_args(arguments)
    quiet_tensorflow(verbose=args.verbose)
    _configure_logging(args.log_level)

    def command() -> int:
        if args.command == "demo":
            from sidecar.demo import run_demo

            return run_demo(args.workdir)
        if args.command == "envoy-bootstrap":
            return bootstrap_command(args, os.environ)
        return run_command(args, os.environ, components=components)

    try:
        return run_reporting_errors(
            "tftrt-sidecar", command,
            [(UserError, EXIT_USAGE), (SidecarError, EXIT_STORAGE)],
            verbose=args.verbose,
        )
    except KeyboardInterrupt:
        print("tftrt-sidecar: stopped; unfinished jobs resume on the next start", file=sys.stderr)
        return 130


def run_command(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    *,
    components: ComponentsFactory | None = None,
) -> int:
    """``tftrt-sidecar run``: validate the settings, then run the service until stopped."""
    settings = load_settings(args, environ)
    _warn_if_onednn_off()
    from sidecar.base.scratch import owned_temporary_files
    from sidecar.service.loop import SidecarService
    from sidecar.service.wiring import build_service

    stop = threading.Event()
    with owned_temporary_files():  # a directory of its own; a killed run's is removed
        parts = (components or build_service)(settings)
        with _stop_on_signals(stop), SidecarService(settings, parts) as service:
            summary = service.run(stop)
    print_summary(summary)
    return EXIT_JOB_FAILED if summary.failed else EXIT_OK


def bootstrap_command(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """``tftrt-sidecar envoy-bootstrap``: the bootstrap an Envoy container runs with."""
    from sidecar.envoy.binary import EnvoyBinary
    from sidecar.envoy.bootstrap import validate_bootstrap, write_bootstrap
    from sidecar.envoy.from_settings import envoy_settings

    settings = envoy_settings(load_settings(args, environ))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    checking = args.out.with_name(f".{args.out.name}.checking")
    try:
        validate_bootstrap(EnvoyBinary.locate(), write_bootstrap(settings, checking))
    except BaseException:
        checking.unlink(missing_ok=True)
        raise
    checking.replace(args.out)  # only a bootstrap Envoy accepted ever has this name
    print(f"wrote {args.out}: Envoy {settings.listen} -> TF Serving {settings.upstream}, "
          f"mirroring to {settings.recorder}")
    return EXIT_OK


def print_summary(summary: RunSummary) -> None:
    """One line per job result, withdrawal and retirement, on standard output."""
    for result in summary.results:
        print(result.describe())
    for model, version in summary.withdrawn:
        print(f"{model}/{version}: withdrawn from serving (removed from incoming)")
    for model, version in summary.retired:
        print(f"{model}/{version}: retired by retention")
    if not summary.results:
        print("nothing to do: no new version was ready")


class _stop_on_signals:
    """SIGTERM or SIGINT: stop after the current job; a second one: stop now.

    Stopping mid-job is safe: the journal resumes the job on the next start and
    the serving base only ever holds complete versions.
    """

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._previous: dict[int, object] = {}

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for number in (signal.SIGTERM, signal.SIGINT):
            self._previous[number] = signal.signal(number, self._handle)

    def __exit__(self, *_: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self._stop.is_set():
            raise KeyboardInterrupt
        logging.getLogger("sidecar").warning(
            "%s received: stopping after the current job (send it again to stop now)",
            signal.Signals(number).name,
        )
        self._stop.set()


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level on standard error (default INFO)",
    )
    add_verbose_argument(parser)


def _warn_if_onednn_off() -> None:
    # The sidecar measures and verifies versions in this process tree, TF Serving serves
    # them: with oneDNN on in one and off in the other, a version verified here can run
    # slower or fail there (int8 ops run only with oneDNN).
    from converter import ONEDNN_VARIABLE, onednn_enabled

    if not onednn_enabled():
        logging.getLogger("sidecar").warning(
            "oneDNN is off in this process, so versions are measured and verified without "
            f"it (and INT8 cannot be made): start the sidecar with {ONEDNN_VARIABLE}=1, and "
            "TF Serving the same (k8s/ sets both), or leave both off")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


if __name__ == "__main__":
    sys.exit(main())
