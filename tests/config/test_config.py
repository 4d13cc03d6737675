"""Settings: defaults, precedence (defaults < TOML < environment < flags), validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.base.errors import ConfigError
from sidecar.config import ModelPolicy, Settings, build_argument_parser, load_settings
from sidecar.config import defaults as d
from sidecar.config.overrides import PolicyOverrides
from sidecar.state.controls import ModelControls


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sidecar.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_named_constants() -> None:
    settings = load_settings(None, {})
    assert settings == Settings()
    assert settings.paths.incoming_base == Path("/models/incoming") == d.DEFAULT_INCOMING_BASE
    assert settings.paths.serving_base == Path("/models/serving")
    assert settings.paths.state_dir == Path("/var/lib/tftrt-sidecar")
    assert settings.paths.engine_cache_dir == Path("/var/cache/tftrt-engines")
    assert settings.paths.model_config_file == Path("/models/serving/models.config")
    assert settings.default_policy == ModelPolicy(
        backend="auto", precision="FP32", max_engines=d.DEFAULT_MAX_ENGINES,
        minimum_segment_size=3, build_at_runtime=False, keep_versions=d.DEFAULT_KEEP_VERSIONS,
        default_batch_sizes=(1, 8),
    )
    assert settings.watch.once is False
    assert settings.policy_for("anything") is settings.default_policy


def test_precedence_defaults_toml_environment_flags(tmp_path: Path) -> None:
    config = write_toml(
        tmp_path,
        'incoming_base = "in"\nserving_base = "/srv/a"\nsettle_seconds = 3\n'
        '[policy]\nprecision = "FP16"\nkeep_versions = 5\n',
    )
    parser = build_argument_parser()
    flags = parser.parse_args(["--config", str(config), "--serving", "/srv/flag", "--once"])
    environ = {"TFTRT_SIDECAR_SERVING_BASE": "/srv/env", "TFTRT_SIDECAR_KEEP_VERSIONS": "7"}

    only_toml = load_settings(None, {}, config)
    assert only_toml.paths.serving_base == Path("/srv/a")
    assert only_toml.paths.incoming_base == tmp_path / "in"  # relative to the config file
    assert only_toml.watch.settle_seconds == 3.0
    assert only_toml.default_policy.precision == "FP16"
    assert only_toml.default_policy.keep_versions == 5

    with_env = load_settings(None, environ, config)
    assert with_env.paths.serving_base == Path("/srv/env")
    assert with_env.default_policy.keep_versions == 7
    assert with_env.default_policy.precision == "FP16"

    with_flags = load_settings(flags, environ)
    assert with_flags.paths.serving_base == Path("/srv/flag")
    assert with_flags.watch.once is True
    assert with_flags.watch.settle_seconds == 3.0
    assert with_flags.default_policy.keep_versions == 7


def test_config_path_from_environment_and_flags_parsed_as_mapping(tmp_path: Path) -> None:
    config = write_toml(tmp_path, "rescan_interval_seconds = 0.5\n")
    settings = load_settings({"once": None}, {"TFTRT_SIDECAR_CONFIG": str(config)})
    assert settings.watch.rescan_interval_seconds == 0.5
    flags = {"incoming": "rel/in", "settle_seconds": "2.5", "marker_file": "READY"}
    settings = load_settings(flags, {})
    assert settings.paths.incoming_base == Path.cwd() / "rel" / "in"
    assert settings.watch.settle_seconds == 2.5
    assert settings.watch.marker_file == "READY"


def test_per_model_overrides_sit_on_the_final_default_policy(tmp_path: Path) -> None:
    config = write_toml(
        tmp_path,
        '[models.resnet]\nprecision = "fp16"\nbackend = "XLA"\n'
        "default_batch_sizes = [16, 1, 4]\n"
        "[models.bert]\nkeep_versions = 1\n",
    )
    settings = load_settings(None, {"TFTRT_SIDECAR_MAX_ENGINES": "6"}, config)
    resnet = settings.policy_for("resnet")
    assert resnet.precision == "FP16"
    assert resnet.backend == "xla"
    assert resnet.default_batch_sizes == (1, 4, 16)
    assert resnet.max_engines == 6  # from the environment's default policy
    assert settings.policy_for("bert").keep_versions == 1
    assert settings.policy_for("bert").precision == "FP32"
    assert settings.policy_for("other") == settings.default_policy
    with pytest.raises(TypeError):
        settings.model_policies["x"] = resnet  # type: ignore[index]


def test_environment_values_are_parsed(tmp_path: Path) -> None:
    environ = {
        "TFTRT_SIDECAR_BUILD_AT_RUNTIME": "yes",
        "TFTRT_SIDECAR_DEFAULT_BATCH_SIZES": "2, 32",
        "TFTRT_SIDECAR_MARKER_FILE": "",
        "TFTRT_SIDECAR_ONCE": "true",
        "TFTRT_SIDECAR_STATE_DIR": str(tmp_path / "state"),
        "UNRELATED": "ignored",
    }
    settings = load_settings(None, environ)
    assert settings.default_policy.build_at_runtime is True
    assert settings.default_policy.default_batch_sizes == (2, 32)
    assert settings.watch.marker_file is None
    assert settings.watch.once is True
    assert settings.paths.state_dir == tmp_path / "state"


BAD_ENVIRONMENT = [
    ("SETTLE_SECONDS", "abc", "settle_seconds", "number of seconds"),
    ("SETTLE_SECONDS", "-1", "settle_seconds", "number of seconds"),
    ("SETTLE_SECONDS", "nan", "settle_seconds", "number of seconds"),
    ("RESCAN_INTERVAL_SECONDS", "0", "rescan_interval_seconds", "more than 0"),
    ("MARKER_FILE", "a/b", "marker_file", "plain file name"),
    ("MARKER_FILE", "..", "marker_file", "plain file name"),
    ("BACKEND", "trt", "backend", "'auto', 'xla', 'tensorrt'"),
    ("PRECISION", "INT4", "precision", "'FP32', 'FP16', 'INT8'"),
    ("MAX_ENGINES", "0", "max_engines", "at least 1"),
    ("MAX_ENGINES", "two", "max_engines", "at least 1"),
    ("MINIMUM_SEGMENT_SIZE", "1.5", "minimum_segment_size", "at least 1"),
    ("KEEP_VERSIONS", "-2", "keep_versions", "at least 1"),
    ("BUILD_AT_RUNTIME", "maybe", "build_at_runtime", "true or false"),
    ("ONCE", "2", "once", "true or false"),
    ("DEFAULT_BATCH_SIZES", "1,1", "default_batch_sizes", "distinct"),
    ("DEFAULT_BATCH_SIZES", "0", "default_batch_sizes", "distinct"),
    ("DEFAULT_BATCH_SIZES", "a,b", "default_batch_sizes", "distinct"),
    ("DEFAULT_BATCH_SIZES", "1,2,3,4,5", "default_batch_sizes", "max_engines"),
    ("INCOMING_BASE", " ", "incoming_base", "path"),
    ("SETTLE_SECOND", "5", "TFTRT_SIDECAR_SETTLE_SECOND", "TFTRT_SIDECAR_SETTLE_SECONDS"),
]


@pytest.mark.parametrize(("suffix", "value", "field", "hint"), BAD_ENVIRONMENT)
def test_bad_environment_values_name_field_value_source_and_fix(
    suffix: str, value: str, field: str, hint: str
) -> None:
    name = "TFTRT_SIDECAR_" + suffix
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {name: value})
    message = str(caught.value)
    assert caught.value.field == field
    assert field in message
    assert f"environment variable {name}" in message
    assert "Fix:" in message
    assert hint in message
    if not field.startswith("TFTRT_SIDECAR_"):  # an unknown name has no value to show
        assert repr(value) in message


BAD_TOML = [
    ("settle_seconds = true\n", "settle_seconds", "number of seconds"),
    ("serving_base = 5\n", "serving_base", "path"),
    ("servng_base = '/x'\n", "servng_base", "did you mean 'serving_base'"),
    ("[policy]\nprecison = 'FP16'\n", "policy.precison", "did you mean 'policy.precision'"),
    ("[policy]\nmax_engines = 1\n", "policy.max_engines", "max_engines = 1"),
    ("[models.resnet]\nmax_engines = 0\n", "models.resnet.max_engines", "at least 1"),
    ("[models.resnet]\nbogus = 1\n", "models.resnet.bogus", "known settings"),
    ("[policy]\naccuracy = 'top5'\n", "policy.accuracy", "'auto', 'top1', 'scaled_error'"),
    ("[policy]\nrebuild_below_coverage = 1.5\n", "policy.rebuild_below_coverage", "0.8"),
    ("[policy]\nrebuild_after_seconds = -1\n", "policy.rebuild_after_seconds", "seconds"),
    ("[models.resnet]\ndefault_batch_sizes = []\n", "models.resnet.default_batch_sizes", "[1, 8]"),
    ("[models.'.hidden']\nkeep_versions = 1\n", "models", "ASCII letters"),
    ("[models.'my model']\nkeep_versions = 1\n", "models", "ASCII letters"),
    ("[models.'caf\u00e9']\nkeep_versions = 1\n", "models", "ASCII letters"),
    ("models = 3\n", "models", "table"),
    ("policy = 'fast'\n", "policy", "table"),
    ("settle_seconds = \n", "config", "not valid TOML"),
    ("incoming_base = '/m'\nserving_base = '/m/serving'\n", "serving_base", "overlaps"),
    ("incoming_base = '/m/x'\nserving_base = '/m/x'\n", "serving_base", "separate directories"),
]


@pytest.mark.parametrize(("text", "field", "hint"), BAD_TOML)
def test_bad_toml_names_field_and_fix(tmp_path: Path, text: str, field: str, hint: str) -> None:
    config = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {}, config)
    message = str(caught.value)
    assert caught.value.field == field
    assert field in message
    assert str(config) in message
    assert "Fix:" in message
    assert hint in message


def test_flag_errors_name_the_flag() -> None:
    flags = build_argument_parser().parse_args(["--settle-seconds", "soon"])
    with pytest.raises(ConfigError, match=r"settle_seconds = 'soon'.*flag --settle-seconds"):
        load_settings(flags, {})


def test_flags_override_overlap_is_caught() -> None:
    flags = build_argument_parser().parse_args(["--incoming", "/models/serving/raw"])
    with pytest.raises(ConfigError, match="command-line flag --incoming"):
        load_settings(flags, {})


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings({"config": str(missing)}, {})
    assert str(missing) in str(caught.value)
    assert "cannot be read" in str(caught.value)
    assert "Fix: point --config at an existing" in str(caught.value)


def test_argument_parser_has_the_documented_flags() -> None:
    help_text = build_argument_parser().format_help()
    for flag in (
        "--config", "--incoming", "--serving", "--state", "--engine-cache",
        "--model-config-file", "--once",
    ):
        assert flag in help_text
    assert "/models/incoming" in help_text
    parsed = build_argument_parser().parse_args([])
    assert all(value is None for value in vars(parsed).values())


# Policies that do not hold, as a [policy] table; the config file and the admin API's
# SetModelPolicy (on a configured default policy) must refuse the same ones.
UNSOUND_POLICIES = [
    ({"default_batch_sizes": list(range(1, 65))}, "default_batch_sizes", "max_engines = 4"),
    ({"max_engines": 2, "default_batch_sizes": [1, 2, 4]}, "default_batch_sizes", "need 3"),
    ({"max_engines": 1}, "max_engines", "need 2 engines"),
    ({"max_engines": 5000}, "max_engines", "at most 1000"),
    ({"keep_versions": 100_000}, "keep_versions", "at most 1000"),
    ({"default_batch_sizes": [1, 1 << 21]}, "default_batch_sizes", "from 1 to 1048576"),
    ({"minimum_segment_size": 10**6}, "minimum_segment_size", "at most 100000"),
    ({"min_top1_agreement": 1.5}, "min_top1_agreement", "from 0 to 1"),
]


def _toml_policy(policy: dict[str, object]) -> str:
    def literal(value: object) -> str:
        return f"'{value}'" if isinstance(value, str) else str(value)

    return "[policy]\n" + "".join(f"{key} = {literal(value)}\n" for key, value in policy.items())


@pytest.mark.parametrize(("policy", "field", "hint"), UNSOUND_POLICIES)
def test_config_and_admin_policy_refuse_the_same_policies(
    tmp_path: Path, policy: dict[str, object], field: str, hint: str
) -> None:
    config = write_toml(tmp_path, _toml_policy(policy))
    with pytest.raises(ConfigError) as from_config:
        load_settings(None, {}, config)
    assert from_config.value.field == f"policy.{field}"
    assert hint in str(from_config.value)

    controls = ModelControls.open(tmp_path / "state")
    raw = {key: ",".join(map(str, value)) if isinstance(value, list) else str(value)
           for key, value in policy.items()}  # as the admin CLI sends them
    with pytest.raises(ConfigError) as from_admin:
        overrides = PolicyOverrides.parse(raw, "the SetModelPolicy request")
        controls.set_overrides("m", overrides, configured=ModelPolicy())
    assert from_admin.value.field == field
    assert hint in str(from_admin.value)
    assert ModelControls.open(tmp_path / "state").models() == [], "a refused policy was kept"


def test_admin_overrides_that_fit_the_configured_policy_are_kept(tmp_path: Path) -> None:
    config = write_toml(tmp_path, _toml_policy({"max_engines": 8}))
    configured = load_settings(None, {}, config).default_policy
    controls = ModelControls.open(tmp_path / "state")
    many = PolicyOverrides.parse({"default_batch_sizes": "1,2,4,8,16,32,64,128"}, "request")
    kept = controls.set_overrides("m", many, configured=configured)
    assert kept.overrides.apply(configured).default_batch_sizes == (1, 2, 4, 8, 16, 32, 64, 128)
    with pytest.raises(ConfigError, match="need 8 engines"):
        # Lowering max_engines under the kept batch sizes is refused, naming max_engines.
        controls.set_overrides("m", PolicyOverrides.parse({"max_engines": "4"}, "request"),
                               configured=configured)


def test_overrides_the_config_no_longer_fits_are_not_applied(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wide = load_settings(None, {}, write_toml(tmp_path, _toml_policy({"max_engines": 8})))
    controls = ModelControls.open(tmp_path / "state")
    many = PolicyOverrides.parse({"default_batch_sizes": "1,2,4,8,16,32"}, "request")
    controls.set_overrides("m", many, configured=wide.default_policy)
    applied = controls.policy_for("m", wide.default_policy)
    assert applied.default_batch_sizes == many.default_batch_sizes

    # The config file is changed to max_engines = 4 and the sidecar restarted.
    narrow = load_settings(None, {}, write_toml(tmp_path, _toml_policy({"max_engines": 4})))
    reopened = ModelControls.open(tmp_path / "state")
    for _ in range(3):
        assert reopened.policy_for("m", narrow.default_policy) == narrow.default_policy
    conflicts = [r for r in caplog.records if "uses its configured policy" in r.getMessage()]
    assert len(conflicts) == 1, "logged once, not on every use"
    assert "default_batch_sizes" in conflicts[0].getMessage()
    assert "admin policy m --clear" in conflicts[0].getMessage()


def test_every_setting_has_its_flag_and_each_flag_sets_its_field(tmp_path: Path) -> None:
    # The flags are derived from the settings' declarations: each one must reach its field
    # (the admin TLS flags once did not: their argparse names differed from the fields').
    given = {
        "--admin-tls-cert": ("admin.tls_cert_file", tmp_path / "cert.pem"),
        "--admin-tls-key": ("admin.tls_key_file", tmp_path / "key.pem"),
        "--admin-tls-client-ca": ("admin.tls_client_ca_file", tmp_path / "ca.pem"),
        "--admin-token-file": ("admin.token_file", tmp_path / "token"),
        "--engine-cache": ("paths.engine_cache_dir", tmp_path / "engines"),
        "--mirror-budget-per-second": ("tap.mirror_budget_per_second", 5.0),
        "--run-envoy": ("tap.run_envoy", False),
        "--job-signature-key": ("job.signature_key", "classify"),
        "--shape-store-max-samples-per-model": ("shape_store.max_samples_per_model", 0),
    }
    for name in ("cert.pem", "key.pem", "ca.pem"):  # load_settings checks the files are there
        (tmp_path / name).write_text("PEM")
    (tmp_path / "token").write_text("a" * 32)
    argv = [part for flag, (_, value) in given.items()
            for part in (flag, "false" if value is False else str(value))]
    settings = load_settings(build_argument_parser().parse_args(argv), {})
    for flag, (field, value) in given.items():
        section, name = field.split(".")
        assert getattr(getattr(settings, section), name) == value, flag
    assert settings.admin.token == "a" * 32
    help_text = build_argument_parser().format_help()
    assert "(default 10)" in help_text  # --settle-seconds shows its default as typed
    assert "--once" in help_text and "ONCE" not in help_text  # a switch takes no value


def test_flags_given_as_a_mapping_by_a_field_name_are_refused() -> None:
    # A mapping of flags is keyed by argparse names (--state: "state"); a field's name there
    # would be ignored silently, so it is refused naming the flag meant.
    with pytest.raises(ConfigError, match="did you mean 'state'") as caught:
        load_settings({"state_dir": "/srv/state"}, {})
    assert caught.value.field == "state_dir"
    assert load_settings({"state": "/srv/state"}, {}).paths.state_dir == Path("/srv/state")
