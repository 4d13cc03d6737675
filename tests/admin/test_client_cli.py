"""The admin CLI against a real admin server: tables, --json, errors and exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sidecar.admin.settings import AdminSettings
from sidecar.client.cli import EXIT_OK, EXIT_RPC_ERROR, EXIT_USAGE, TOKEN_ENV, main
from sidecar.config import Address
from tests.admin.certs import Certificates
from tests.admin.conftest import TOKEN, AdminStand, build_stand, close_stand
from tests.support.models import build_tiny_saved_model
from tests.support.waiting import wait_until


def _run(capsys: pytest.CaptureFixture[str], *argv: str, env: dict[str, str] | None = None
         ) -> tuple[int, str, str]:
    status = main(list(argv), environ=env or {})
    out, err = capsys.readouterr()
    return status, out, err


def test_commands_print_tables_and_json(
    stand: AdminStand, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    tmp_path: Path
) -> None:
    address = ["--address", stand.address]
    stand.land("mlp", 1)
    status, out, _ = _run(capsys, *address, "convert", "mlp", "1", "--set", "max_engines=2")
    assert status == EXIT_OK and "OPERATION" in out and "mlp" in out
    operation = out.splitlines()[1].split()[0]

    def finished() -> bool:
        _, text, _ = _run(capsys, *address, "--json", "operation", operation.split("/", 1)[1])
        return bool(json.loads(text)["done"])

    wait_until(finished, 120, f"{operation} done", interval=0.2)
    status, out, _ = _run(capsys, *address, "operations")
    assert status == EXIT_OK and operation in out and "published" in out
    status, out, _ = _run(capsys, *address, "list")
    assert status == EXIT_OK and out.split("\n")[1].split()[:3] == ["mlp", "1000", "no"]
    status, out, _ = _run(capsys, *address, "get", "mlp")
    assert status == EXIT_OK and "VERSION" in out and "published" in out and "max_engines" in out
    # Each version's precision and accuracy check, in the table as in GetModel.
    row = out.split("\n\n")[1].splitlines()[1]
    assert re.search(r" FP32 +(top1 \d\.\d{3}|error \S+) on [1-9]\d* ", row), row
    status, out, _ = _run(capsys, *address, "--json", "get", "mlp")
    document = json.loads(out)
    assert document["name"] == "mlp" and document["versions"][0]["state"] == "published"

    status, out, _ = _run(capsys, *address, "policy", "mlp", "--set", "precision=fp16")
    assert status == EXIT_OK and "precision = FP16  *" in out
    status, out, _ = _run(capsys, *address, "pause", "mlp", "--reason", "maintenance")
    assert (status, out.strip()) == (EXIT_OK, "mlp: paused (maintenance)")
    status, out, _ = _run(capsys, *address, "resume", "mlp")
    assert (status, out.strip()) == (EXIT_OK, "mlp: resumed")
    status, out, _ = _run(capsys, *address, "shapes", "mlp")
    assert status == EXIT_OK and "no recent traffic" in out

    tiny = build_tiny_saved_model(tmp_path / "tiny")
    stand.publisher.publish_copy("tiny", 1, tiny)
    stand.publisher.publish_copy("tiny", 2, tiny)
    status, out, _ = _run(capsys, *address, "rollback", "tiny", "--reason", "bad labels")
    assert status == EXIT_OK and "version 2 rolled back" in out and "serves version 1" in out
    assert "rolled back tiny/2 through the admin API (bad labels)" in caplog.text


def test_errors_exit_nonzero_with_the_status(
    stand: AdminStand, capsys: pytest.CaptureFixture[str]
) -> None:
    address = ["--address", stand.address]
    status, _, err = _run(capsys, *address, "get", "nope")
    assert status == EXIT_RPC_ERROR and "NOT_FOUND" in err
    status, _, err = _run(capsys, *address, "rollback", "../x")
    assert status == EXIT_RPC_ERROR and "INVALID_ARGUMENT" in err
    status, _, err = _run(capsys, *address, "policy", "mlp", "--set", "nonsense")
    assert status == EXIT_USAGE and "KEY=VALUE" in err
    status, _, err = _run(capsys, *address, "policy", "mlp", "--set", "colour=blue")
    assert status == EXIT_USAGE and "not a policy field" in err
    status, _, err = _run(capsys, "--address", "127.0.0.1:65536", "list")
    assert status == EXIT_USAGE and "--address = '127.0.0.1:65536' is not host:port" in err


def test_token_and_tls_options(
    tmp_path: Path, mlp_model: Path, certificates: Certificates,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = AdminSettings(listen=Address("127.0.0.1", 0), token=TOKEN,
                             tls_cert_file=certificates.server_cert,
                             tls_key_file=certificates.server_key)
    built = build_stand(tmp_path, mlp_model, settings)
    try:
        wait_until(lambda: built.server.serving, 5, "the TLS admin server serving")
        tls = ["--address", built.address, "--tls-ca", str(certificates.ca)]
        status, _, err = _run(capsys, *tls, "list")
        assert status == EXIT_RPC_ERROR and "UNAUTHENTICATED" in err
        status, _, err = _run(capsys, *tls, "--token", "wrong-token-0123456789", "list")
        assert status == EXIT_RPC_ERROR and "UNAUTHENTICATED" in err
        status, out, _ = _run(capsys, *tls, "--token", TOKEN, "list")
        assert (status, out.strip()) == (EXIT_OK, "(none)")
        status, out, _ = _run(capsys, *tls, "list", env={TOKEN_ENV: TOKEN})
        assert status == EXIT_OK
    finally:
        close_stand(built)
