"""`tftrt`: convert a SavedModel, install its engines, or run the demo."""

from __future__ import annotations

import argparse
import importlib
import pathlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from converter.console import (
    EXIT_USAGE,
    CommandParser,
    add_verbose_argument,
    add_version_argument,
    quiet_tensorflow,
    run_reporting_errors,
)
from converter.errors import ConverterError, InputFnError
from converter.params import BACKENDS, ConversionParams, TrtPrecisionMode


class _Progress:
    """Prints each long step and how long it took."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._done = 0

    def step(self, what: str, action: Callable[[], Any]) -> Any:
        self._done += 1
        print(f"[{self._done}/{self._total}] {what} ...", flush=True)
        start = time.perf_counter()
        result = action()
        print(f"      done in {time.perf_counter() - start:.1f} s", flush=True)
        return result


def _load_input_fn(reference: str) -> Callable[[], Iterator[Any]]:
    module_name, _, attribute = reference.partition(":")
    if not attribute:
        raise InputFnError(f"--input-fn {reference!r} must be module:function")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise InputFnError(f"--input-fn {reference!r} cannot be loaded: {error}") from error
    return function


def _parse_shapes(items: Sequence[str]) -> dict[str, list[tuple[int, ...]]]:
    from converter.savedmodel.synthetic import parse_shape

    shapes = {}
    for item in items:
        name, separator, values = item.partition("=")
        if not separator:
            raise InputFnError(f"--shapes {item!r} must be NAME=SHAPE[,SHAPE...], "
                               "e.g. x=1x224x224x3,8x224x224x3")
        shapes[name] = [parse_shape(v) for v in values.split(",")]
    return shapes


def _convert(args: argparse.Namespace) -> int:
    from converter.converter import Converter
    from converter.savedmodel.engine_cache import install_engines
    from converter.savedmodel.synthetic import synthetic_input_fn

    params = ConversionParams(
        precision_mode=args.precision,
        minimum_segment_size=args.min_segment_size,
        maximum_cached_engines=args.max_engines,
        allow_build_at_runtime=not args.no_build_at_runtime,
        keep_slower_engines=args.keep_slower_engines,
        backend=args.backend,
    )
    steps = 3 + bool(args.shapes or args.input_fn) + bool(args.engine_cache)
    progress = _Progress(steps)
    converter = progress.step(
        f"loading {args.input}",
        lambda: Converter(args.input, args.tags, args.signature_key, params),
    )
    progress.step("segmenting and rewriting", converter.convert)
    if args.input_fn:
        input_fn = _load_input_fn(args.input_fn)
    elif args.shapes:
        input_fn = synthetic_input_fn(converter.input_specs, _parse_shapes(args.shapes))
    else:
        input_fn = None
    if input_fn is not None:
        progress.step("building engines and timing them against native",
                      lambda: converter.build(input_fn))
    progress.step(f"saving to {args.output}", lambda: converter.save(args.output))
    if args.engine_cache:
        result = progress.step(
            f"installing engines into {args.engine_cache}",
            lambda: install_engines(args.output, args.engine_cache),
        )
        print(f"      {result.installed} engine file(s) installed in {result.directory} "
              f"({result.note}); serve with TF_XLA_FLAGS='{result.xla_flags()}'")
    converter.summary(line_length=100, detailed=args.verbose)
    return 0


def _install(args: argparse.Namespace) -> int:
    from converter.savedmodel.engine_cache import install_engines

    result = install_engines(args.model, args.engine_cache)
    print(f"{result.installed} installed, {result.already_present} already present in "
          f"{result.directory}: {result.note}")
    print(f"TF_XLA_FLAGS='{result.xla_flags()}'")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from converter.demo import run_demo

    return run_demo(pathlib.Path(args.workdir))


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="tftrt", description=__doc__)
    add_version_argument(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="convert a SavedModel")
    convert.add_argument("--input", required=True, help="the SavedModel directory")
    convert.add_argument("--output", required=True, help="a new directory for the result")
    convert.add_argument("--tags", nargs="+", default=None, help="MetaGraph tags (serve)")
    convert.add_argument("--signature-key", default=None, help="signature (serving_default)")
    convert.add_argument("--precision", default="FP32",
                         choices=TrtPrecisionMode.supported_precision_modes())
    convert.add_argument("--backend", default="auto", choices=BACKENDS)
    convert.add_argument("--shapes", action="append", default=[], metavar="NAME=SHAPE,...",
                         help="input shapes to prebuild, e.g. x=1x224x224x3,8x224x224x3; "
                              "repeat per input (the k-th shapes go together)")
    convert.add_argument("--input-fn", metavar="MODULE:FUNCTION",
                         help="a generator function yielding real inputs to build with")
    convert.add_argument("--max-engines", type=int, default=1,
                         help="most prebuilt shapes per segment (maximum_cached_engines)")
    convert.add_argument("--min-segment-size", type=int, default=3)
    convert.add_argument("--no-build-at-runtime", action="store_true",
                         help="shapes not prebuilt run native: serving never compiles")
    convert.add_argument("--keep-slower-engines", action="store_true",
                         help="keep engines that did not beat native on this machine")
    convert.add_argument("--engine-cache", metavar="DIR",
                         help="also install the engines into this serving cache root")
    convert.add_argument("--verbose", action="store_true",
                         help="list every segment boundary; show TensorFlow's log lines and "
                         "tracebacks")
    convert.set_defaults(run=_convert)
    install = commands.add_parser("install-engines",
                                  help="copy a converted model's engines into a serving cache")
    install.add_argument("--model", required=True)
    install.add_argument("--engine-cache", required=True, metavar="DIR")
    add_verbose_argument(install)
    install.set_defaults(run=_install)
    demo = commands.add_parser("demo", help="convert, build and save a built-in demo model")
    demo.add_argument("--workdir", default="demo-out")
    add_verbose_argument(demo)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tftrt` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "convert" and args.shapes and args.input_fn:
        parser.error("give --shapes or --input-fn, not both")
    quiet_tensorflow(verbose=args.verbose)
    return run_reporting_errors(
        "tftrt", lambda: int(args.run(args)), [(ConverterError, EXIT_USAGE), (OSError, EXIT_USAGE)],
        verbose=args.verbose,
    )


if __name__ == "__main__":
    sys.exit(main())
