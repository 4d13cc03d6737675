"""The settings in sections: each field set by its flag, its environment variable, its flat
TOML key or its section's table; the job and shape-store sections reaching what they
configure; and every check of fields together (or of the files they name) raised by
``load_settings`` naming the field, the value, where it was given and the fix."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sidecar.base.errors import ConfigError
from sidecar.config import Address, build_argument_parser, load_settings
from sidecar.config.job import JobSettings
from sidecar.config.loading import SETTINGS_BY_FLAT_NAME
from sidecar.config.schema import section_specs
from sidecar.config.settings import Settings
from sidecar.recorder.process import RecorderProcess
from sidecar.recorder.settings import RecorderSettings
from sidecar.service.loop import SidecarService
from sidecar.service.wiring import build_service
from sidecar.shapes import Refusal, ShapeObservation, ShapeSet, ShapeStore, TensorSpec
from sidecar.state import JobState
from tests.recorder.conftest import mirror
from tests.support.builders import land
from tests.support.waiting import wait_until

SECTIONS = section_specs(Settings)


def _toml(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "sidecar.toml"
    config.write_text(text, encoding="utf-8")
    return config


def test_the_sections_and_their_derived_names() -> None:
    assert list(SECTIONS) == ["paths", "watch", "retry", "tap", "admin", "metrics", "fleet",
                              "job", "shape_store"]
    # The flat names of before the sections, unchanged: k8s/, docs and users' configs.
    kept = {"incoming_base": "paths.incoming_base", "settle_seconds": "watch.settle_seconds",
            "retry_backoff_seconds": "retry.backoff_seconds", "tap_listen": "tap.tap_listen",
            "upstream": "tap.upstream", "admin_listen": "admin.listen",
            "admin_tls_cert_file": "admin.tls_cert_file",
            "shutdown_grace_seconds": "admin.shutdown_grace_seconds",
            "metrics_listen": "metrics.listen", "store": "fleet.store",
            "lease_seconds": "fleet.lease_seconds"}
    for flat, qualified in kept.items():
        assert SETTINGS_BY_FLAT_NAME[flat].qualified == qualified
    # A new section's: <section>_<field>.
    assert SETTINGS_BY_FLAT_NAME["job_signature_key"].qualified == "job.signature_key"
    assert SETTINGS_BY_FLAT_NAME["shape_store_window_seconds"].qualified == (
        "shape_store.window_seconds")
    every = [spec for section in SECTIONS.values() for spec in section.fields.values()]
    assert len(SETTINGS_BY_FLAT_NAME) == len(every), "flat names are unique"
    assert all(spec.flag is not None for spec in every), "every setting has its flag"


def test_help_lists_the_flags_by_section() -> None:
    help_text = build_argument_parser().format_help()
    for name in SECTIONS:
        assert f"[{name}]:" in help_text
    options = help_text[help_text.index("[paths]:"):]  # after the usage line
    assert options.index("[fleet]:") < options.index("--lease-seconds") < options.index(
        "[job]:") < options.index("--job-signature-key")


def test_a_section_field_is_set_by_flag_env_flat_key_and_table(tmp_path: Path) -> None:
    flags = build_argument_parser().parse_args(["--lease-seconds", "11"])
    assert load_settings(flags, {}).fleet.lease_seconds == 11.0
    assert load_settings(None, {"TFTRT_SIDECAR_LEASE_SECONDS": "12"}).fleet.lease_seconds == 12
    flat = _toml(tmp_path, "lease_seconds = 13\n")
    assert load_settings(None, {}, flat).fleet.lease_seconds == 13.0
    table = _toml(tmp_path, "[fleet]\nlease_seconds = 14\n")
    assert load_settings(None, {}, table).fleet.lease_seconds == 14.0
    # The usual order: table < environment < flag.
    assert load_settings(None, {"TFTRT_SIDECAR_LEASE_SECONDS": "12"}, table
                         ).fleet.lease_seconds == 12.0
    flags = build_argument_parser().parse_args(["--config", str(table), "--lease-seconds", "11"])
    assert load_settings(flags, {"TFTRT_SIDECAR_LEASE_SECONDS": "12"}).fleet.lease_seconds == 11


def test_a_new_sections_fields_by_flag_env_and_table(tmp_path: Path) -> None:
    flags = build_argument_parser().parse_args(["--job-tags", "serve,gpu",
                                                "--job-fp16-tolerance", "0.03"])
    job = load_settings(flags, {}).job
    assert (job.tags, job.fp16_tolerance) == (("serve", "gpu"), 0.03)
    job = load_settings(None, {"TFTRT_SIDECAR_JOB_SIGNATURE_KEY": "classify"}).job
    assert job.signature_key == "classify"
    config = _toml(tmp_path, '[job]\nsignature_key = "predict"\ntags = ["serve"]\n'
                             "int8_tolerance = 0.1\n[shape_store]\nwindow_seconds = 7200\n")
    settings = load_settings(None, {}, config)
    assert settings.job == JobSettings(signature_key="predict", int8_tolerance=0.1)
    assert settings.job.tolerance_for("INT8") == 0.1
    assert settings.shape_store.window_seconds == 7200.0


def test_a_setting_given_twice_in_one_file_or_unknown_in_a_table_is_refused(
        tmp_path: Path) -> None:
    config = _toml(tmp_path, "lease_seconds = 10\n[fleet]\nlease_seconds = 20\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {}, config)
    assert caught.value.field == "fleet.lease_seconds"
    assert "is given twice, also as lease_seconds" in str(caught.value)
    assert "[fleet] lease_seconds" in str(caught.value)
    with pytest.raises(ConfigError, match=r"did you mean 'fleet\.lease_seconds'"):
        load_settings(None, {}, _toml(tmp_path, "[fleet]\nlease_second = 20\n"))
    with pytest.raises(ConfigError, match="did you mean 'TFTRT_SIDECAR_JOB_SIGNATURE_KEY'"):
        load_settings(None, {"TFTRT_SIDECAR_SIGNATURE_KEY": "x"})


def test_a_port_above_65535_is_refused_with_the_setting_and_the_fix(tmp_path: Path) -> None:
    config = _toml(tmp_path, '[admin]\nlisten = "127.0.0.1:65536"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {}, config)
    assert caught.value.field == "admin.listen"
    message = str(caught.value)
    assert "'127.0.0.1:65536' is not host:port with a port from 1 to 65535" in message
    assert f"config file {config}" in message
    assert "Fix: set admin.listen to HOST:PORT" in message
    with pytest.raises(ConfigError, match="port from 1 to 65535"):
        load_settings({"metrics_listen": "[::1]:65536"}, {})
    assert load_settings({"metrics_listen": "[::1]:65535"}, {}).metrics.listen == Address(
        "::1", 65535)


def _refusal(flags: dict[str, object], environ: dict[str, str] | None = None,
             config: Path | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(flags, environ or {}, config)
    return caught.value


def test_a_tap_without_upstream_is_refused_at_load(tmp_path: Path) -> None:
    error = _refusal({"tap_listen": "0.0.0.0:8500"}, {"TFTRT_SIDECAR_UPSTREAM": ""})
    assert (error.field, error.value) == ("upstream", "")
    assert "environment variable TFTRT_SIDECAR_UPSTREAM" in str(error)
    assert "is empty while tap_listen is set" in str(error)
    assert "Fix: set upstream to TF Serving's gRPC address" in str(error)
    # Given in a table, the error names it as given there.
    config = _toml(tmp_path, '[tap]\ntap_listen = "0.0.0.0:8500"\nupstream = ""\n')
    assert _refusal({}, config=config).field == "tap.upstream"
    assert load_settings({"tap_listen": "0.0.0.0:8500"}, {}).tap.upstream is not None


def test_admin_tls_and_token_files_are_checked_at_load(tmp_path: Path) -> None:
    cert, key, ca = (tmp_path / name for name in ("cert.pem", "key.pem", "ca.pem"))
    for path in (cert, key, ca):
        path.write_text("PEM")
    error = _refusal({"admin_tls_cert": str(cert)})
    assert (error.field, error.value) == ("admin_tls_cert_file", str(cert))
    assert "command-line flag --admin-tls-cert" in str(error)
    assert "and tls_key_file go together" in str(error)
    error = _refusal({"admin_tls_client_ca": str(ca)})
    assert error.field == "admin_tls_client_ca_file" and "needs TLS" in str(error)
    error = _refusal({"admin_tls_cert": str(cert), "admin_tls_key": str(tmp_path / "nope")})
    assert error.field == "admin_tls_key_file" and "is not a readable file" in str(error)
    assert load_settings({"admin_tls_cert": str(cert), "admin_tls_key": str(key),
                          "admin_tls_client_ca": str(ca)}, {}).admin.tls_client_ca_file == ca

    error = _refusal({}, {"TFTRT_SIDECAR_ADMIN_TOKEN_FILE": str(tmp_path / "missing")})
    assert error.field == "admin_token_file"
    assert "environment variable TFTRT_SIDECAR_ADMIN_TOKEN_FILE" in str(error)
    assert "cannot be read" in str(error) and "Fix: point it at a readable file" in str(error)
    (tmp_path / "short").write_text("s3cret\n")
    error = _refusal({"admin_token_file": str(tmp_path / "short")})
    assert "does not hold a bearer token of at least 16 characters" in str(error)
    assert "s3cret" not in str(error), "the token itself is never shown"
    (tmp_path / "token").write_text("0123456789abcdef-s3cret\n")
    admin = load_settings({"admin_token_file": str(tmp_path / "token")}, {}).admin
    assert admin.token == "0123456789abcdef-s3cret" and "s3cret" not in repr(admin)


def test_shape_store_buckets_that_do_not_fit_are_refused_at_load(tmp_path: Path) -> None:
    config = _toml(tmp_path, "[shape_store]\nbucket_seconds = 60\n"
                             "coarse_bucket_seconds = 90\n")
    error = _refusal({}, config=config)
    assert (error.field, error.value) == ("shape_store.coarse_bucket_seconds", 90)
    assert "is not a whole multiple of bucket_seconds (60)" in str(error)
    assert f"config file {config}" in str(error) and "Fix: set coarse_bucket_seconds" in str(
        error)
    error = _refusal({"shape_store_window_seconds": "600"})
    assert error.field == "shape_store_window_seconds"
    assert "is shorter than coarse_bucket_seconds (3600)" in str(error)
    error = _refusal({"shape_store_bucket_seconds": "0"})
    assert "is not a number of seconds of at least more than 0" in str(error)


def test_the_shape_store_is_built_with_its_section(tmp_path: Path) -> None:
    config = _toml(tmp_path, f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
                             "[shape_store]\nmax_shape_sets_per_signature = 1\n")
    parts = build_service(load_settings(None, {}, config))
    store = parts.jobs.shape_source
    assert isinstance(store, ShapeStore)
    try:
        outcomes = store.record([
            ShapeObservation("m", "serving_default",
                             ShapeSet.of({"x": TensorSpec("DT_FLOAT", (size, 4))}), time.time())
            for size in (1, 2)])
        assert outcomes == [None, Refusal.TOO_MANY_SHAPE_SETS]
    finally:
        for component in reversed(parts.background):
            component.stop()


def test_the_recorders_store_is_opened_with_the_section(tmp_path: Path) -> None:
    # The recorder's child process writes what the tap records: with the same section.
    shape_store = load_settings({"shape_store_max_shape_sets_per_signature": "1"},
                                {}).shape_store
    recorder = RecorderProcess(RecorderSettings(listen=Address("127.0.0.1", 0),
                                                shape_store=shape_store), tmp_path)
    recorder.start()
    try:
        assert mirror(recorder.port, 1) == b"" and mirror(recorder.port, 2) == b""
        with ShapeStore(tmp_path, shape_store, time.time) as store:
            wait_until(lambda: store.refused_counts("m").get(Refusal.TOO_MANY_SHAPE_SETS), 20,
                       "the second shape set refused", interval=0.1)
            assert len(store.shape_set_counts("m", "serving_default")) == 1
    finally:
        recorder.stop()


def test_the_jobs_signature_key_reaches_the_job(tmp_path: Path, mlp_model: Path) -> None:
    settings = load_settings({
        "incoming": str(tmp_path / "incoming"), "serving": str(tmp_path / "serving"),
        "state": str(tmp_path / "state"), "engine_cache": str(tmp_path / "engine-cache"),
        "model_config_file": str(tmp_path / "serving" / "models.config"),
        "settle_seconds": 0, "once": True, "job_signature_key": "no_such_signature",
    }, {})
    land(mlp_model, settings.paths.incoming_base, "m", 1)
    parts = build_service(settings)
    assert parts.jobs.settings is settings.job
    try:
        with SidecarService(settings, parts) as service:
            summary = service.run()
    finally:
        for component in reversed(parts.background):
            component.stop()
    [result] = summary.results
    assert result.state is JobState.PUBLISHED  # the original, as there is nothing to convert
    assert "no signature 'no_such_signature'" in (result.flavour_reason or "")


def test_the_operations_guide_lists_every_setting_under_its_section() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    listing = " ".join(guide.split("### Settings", 1)[1].split("Per-model policy", 1)[0].split())
    entries = {entry.split("`", 1)[0]: entry for entry in listing.split("- `[")[1:]}
    assert list(entries) == [f"{name}]" for name in SECTIONS]
    for name, section in SECTIONS.items():
        for spec in section.fields.values():
            assert spec.flag is not None
            flat = "" if spec.flat == spec.name else f" = `{spec.flat}`"
            assert f"`{spec.name}`{flat} (`{spec.flag.name}`)" in entries[f"{name}]"], (
                spec.qualified)
