"""``tftrt-sidecar admin``: a command-line client of the admin gRPC API.

Tables by default, ``--json`` for the API's messages as JSON. The bearer token is
taken from ``--token`` or, to keep it out of process listings, from the
environment variable ``TFTRT_SIDECAR_ADMIN_TOKEN``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import grpc
from google.protobuf import json_format

from converter.console import CommandParser, add_version_argument
from sidecar.admin.policy_wire import overrides_to_proto
from sidecar.admin.validation import OPERATION_PREFIX
from sidecar.base.errors import ConfigError
from sidecar.client import tables
from sidecar.config.address import Address
from sidecar.config.defaults import DEFAULT_ADMIN_LISTEN
from sidecar.config.overrides import POLICY_KEYS, PolicyOverrides
from tftrt.sidecar.admin.v1 import admin_pb2 as pb
from tftrt.sidecar.admin.v1 import admin_pb2_grpc as pb_grpc

TOKEN_ENV: Final = "TFTRT_SIDECAR_ADMIN_TOKEN"
"""Environment variable holding the bearer token when ``--token`` is not given."""

EXIT_OK: Final = 0
"""The call succeeded."""
EXIT_RPC_ERROR: Final = 1
"""The server answered with an error status (printed with its code)."""
EXIT_USAGE: Final = 2
"""Bad arguments."""

def build_parser(prog: str = "tftrt-sidecar admin") -> argparse.ArgumentParser:
    """The client's argument parser.

    The shared options (address, credentials, timeout, ``--json``) are accepted before
    the command and after it, as kubectl accepts its flags; given after, they win.
    """
    parser = CommandParser(prog=prog, description="Talk to a sidecar's admin API.")
    add_version_argument(parser)
    _add_shared(parser, after_command=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        _add_shared(sub, after_command=True)
        return sub

    command("list", "list models")
    command("get", "show a model").add_argument("model")
    convert = command("convert", "convert a version in the incoming base")
    convert.add_argument("model")
    convert.add_argument("version", type=int,
                         help="the incoming version (served as version x 1000 + rebuild)")
    convert.add_argument("--rebuild", action="store_true",
                         help="build it again: a failed or skipped build is retried; a "
                         "published one is rebuilt for today's traffic under its next "
                         "served number")
    _add_set(convert, "for this conversion only")
    command("operations", "list operations").add_argument("--model", default="")
    command("operation", "show an operation").add_argument("id")
    command("cancel", "cancel a queued operation").add_argument("id")
    shapes = command("shapes", "shape statistics of a model")
    shapes.add_argument("model")
    shapes.add_argument("--limit", type=int, default=10)
    policy = command("policy", "show or change a model's persisted policy")
    policy.add_argument("model")
    _add_set(policy, "persisted")
    policy.add_argument("--clear", action="store_true", help="drop every override first")
    pause = command("pause", "hold back new conversions of a model")
    pause.add_argument("model")
    pause.add_argument("--reason", default="")
    command("resume", "let a model's conversions start again").add_argument("model")
    rollback = command("rollback", "take a model's newest version out of serving")
    rollback.add_argument("model")
    rollback.add_argument("--reason", default="")
    return parser


def _add_shared(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """The options every command takes; after the command they default to "not given"."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if after_command else value

    parser.add_argument("--address", default=default(str(DEFAULT_ADMIN_LISTEN)),
                        metavar="HOST:PORT",
                        help=f"admin API address (default {DEFAULT_ADMIN_LISTEN})")
    parser.add_argument("--token", default=default(None),
                        help=f"bearer token (default: ${TOKEN_ENV})")
    parser.add_argument("--tls-ca", type=Path, default=default(None), metavar="FILE",
                        help="PEM CA that signed the server's certificate (enables TLS)")
    parser.add_argument("--tls-cert", type=Path, default=default(None), metavar="FILE",
                        help="PEM client certificate, for mutual TLS")
    parser.add_argument("--tls-key", type=Path, default=default(None), metavar="FILE",
                        help="its PEM private key")
    parser.add_argument("--server-name", default=default(None), metavar="NAME",
                        help="name to check the server certificate against (default: host)")
    parser.add_argument("--timeout", type=float, default=default(30.0), metavar="SECONDS",
                        help="deadline of each call (default 30)")
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="print the answer as JSON")


def _add_set(parser: argparse.ArgumentParser, scope: str) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"policy override ({scope}); keys: {', '.join(POLICY_KEYS)}")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the client; return the exit status (``EXIT_*``)."""
    environ = os.environ if environ is None else environ
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        channel = _channel(args)
    except (ConfigError, OSError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    token = args.token or environ.get(TOKEN_ENV)
    metadata = [("authorization", f"Bearer {token}")] if token else []
    try:
        with channel:
            stub = pb_grpc.SidecarAdminStub(channel)
            response = _COMMANDS[args.command](_Stub(stub, metadata), args, args.timeout)
    except ConfigError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = exc.details() if hasattr(exc, "details") else str(exc)
        print(f"{parser.prog}: {code.name}: {details}", file=sys.stderr)
        return EXIT_RPC_ERROR
    print(_render(args, response))
    return EXIT_OK


class _Stub:
    """The generated stub with the bearer token added to every call."""

    def __init__(self, stub: pb_grpc.SidecarAdminStub, metadata: list[tuple[str, str]]) -> None:
        self._stub = stub
        self._metadata = metadata

    def call(self, method: str, request: Any, timeout: float) -> Any:
        return getattr(self._stub, method)(request, timeout=timeout, metadata=self._metadata)


def _channel(args: argparse.Namespace) -> grpc.Channel:
    # Read as every address setting is: a bad port is refused here, not by gRPC's resolver.
    address = str(Address.parse(args.address, "--address", "the command line"))
    if args.tls_ca is None and args.tls_cert is None:
        return grpc.insecure_channel(address)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError(field="--tls-cert", value=str(args.tls_cert), source="the command line",
                          problem="and --tls-key go together", fix="give both or neither")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=args.tls_ca.read_bytes() if args.tls_ca else None,
        private_key=args.tls_key.read_bytes() if args.tls_key else None,
        certificate_chain=args.tls_cert.read_bytes() if args.tls_cert else None,
    )
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    return grpc.secure_channel(address, credentials, options=options)


def _overrides(pairs: Sequence[str]) -> pb.PolicyOverrides:
    raw: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(field="--set", value=pair, source="the command line",
                              problem="is not KEY=VALUE", fix="write e.g. --set precision=FP16")
        raw[key.strip()] = value.strip()
    return overrides_to_proto(PolicyOverrides.parse(raw, "--set"))


def _operation_name(text: str) -> str:
    return text if text.startswith(OPERATION_PREFIX) else OPERATION_PREFIX + text


_COMMANDS: Final[dict[str, Callable[[_Stub, argparse.Namespace, float], Any]]] = {
    "list": lambda s, a, t: s.call("ListModels", pb.ListModelsRequest(), t),
    "get": lambda s, a, t: s.call("GetModel", pb.GetModelRequest(name=a.model), t),
    "convert": lambda s, a, t: s.call("StartConversion", pb.StartConversionRequest(
        model=a.model, version=a.version, rebuild=a.rebuild, overrides=_overrides(a.set)), t),
    "operations": lambda s, a, t: s.call(
        "ListOperations", pb.ListOperationsRequest(model=a.model), t),
    "operation": lambda s, a, t: s.call(
        "GetOperation", pb.GetOperationRequest(name=_operation_name(a.id)), t),
    "cancel": lambda s, a, t: s.call(
        "CancelOperation", pb.CancelOperationRequest(name=_operation_name(a.id)), t),
    "shapes": lambda s, a, t: s.call(
        "GetShapeStatistics", pb.GetShapeStatisticsRequest(model=a.model, limit=a.limit), t),
    "policy": lambda s, a, t: s.call("SetModelPolicy", pb.SetModelPolicyRequest(
        model=a.model, overrides=_overrides(a.set), clear=a.clear), t),
    "pause": lambda s, a, t: s.call(
        "PauseModel", pb.PauseModelRequest(model=a.model, reason=a.reason), t),
    "resume": lambda s, a, t: s.call("ResumeModel", pb.ResumeModelRequest(model=a.model), t),
    "rollback": lambda s, a, t: s.call(
        "RollBack", pb.RollBackRequest(model=a.model, reason=a.reason), t),
}


def _render(args: argparse.Namespace, response: Any) -> str:
    if args.json:
        return json_format.MessageToJson(
            response, preserving_proto_field_name=True, sort_keys=True, indent=2,
            always_print_fields_with_no_presence=True,
        )
    command = args.command
    if command == "list":
        return tables.models_text(response)
    if command == "get":
        return tables.model_text(response)
    if command in ("convert", "operation", "cancel"):
        return tables.operation_rows([response])
    if command == "operations":
        return tables.operation_rows(list(response.operations))
    if command == "shapes":
        return tables.shapes_text(response)
    if command == "policy":
        return (f"model {response.model} policy (* = overridden):\n"
                + tables.policy_text(response.effective, response.overrides))
    if command in ("pause", "resume"):
        state = "paused" if response.paused else "resumed"
        return f"{response.model}: {state}" + (f" ({response.reason})" if response.reason else "")
    return (f"{response.model}: version {response.rolled_back_version} rolled back (kept at "
            f"{response.kept_at}); TF Serving now serves version {response.now_serving_version}")


if __name__ == "__main__":
    sys.exit(main())
