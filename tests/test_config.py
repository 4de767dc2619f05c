"""ctid.yaml loading: the sample works, and every mistake is reported as file:line:column with its field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from ctid.config import AsteriskServer, CtidConfig, check_config_command, load_config
from ctid.errors import ConfigError
from ctid.yamlconf import Location, load_located, load_model

SAMPLE = Path(__file__).resolve().parents[1] / "config" / "ctid.yaml"

GOOD = """\
asterisk:
  - name: pbx1
    host: 127.0.0.1
    port: 5038
    username: ctid
    secret: s3cret-value
"""


def errors_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_model(Path("conf/ctid.yaml"), CtidConfig, text=textwrap.dedent(text), env=env or {})
    return caught.value.errors


def only_error(text: str, env: dict[str, str] | None = None) -> str:
    errors = errors_of(text, env)
    assert len(errors) == 1, errors
    return errors[0]


# --- the sample and defaults ---------------------------------------------------------------------------


def test_the_shipped_sample_loads_without_any_environment() -> None:
    config = load_config(SAMPLE, env={})
    (pbx,) = config.asterisk
    assert (pbx.name, pbx.host, pbx.port, pbx.username, pbx.tls) == ("pbx1", "127.0.0.1", 5038, "ctid", False)
    assert pbx.secret.get_secret_value() == "ctid"
    assert (config.agi.host, config.agi.port) == ("127.0.0.1", 4573)
    assert (config.web.host, config.web.port) == ("127.0.0.1", 8080)
    assert config.database == "sqlite:///var/ctid.db"
    assert config.redis is None
    assert (config.log.format, config.log.level) == ("auto", "info")


def test_the_sample_takes_the_ami_secret_from_the_environment() -> None:
    config = load_config(SAMPLE, env={"AMI_SECRET": "from-env"})
    assert config.asterisk[0].secret.get_secret_value() == "from-env"


def test_optional_knobs_have_defaults() -> None:
    pbx = load_model(Path("c.yaml"), CtidConfig, text=GOOD, env={}).asterisk[0]
    assert pbx.action_timeout_s == 10
    assert pbx.reconnect_min_s == 0.5
    assert pbx.reconnect_max_s == 30
    assert pbx.ping_interval_s == 20
    assert pbx.connect_timeout_s > 0


def test_config_is_frozen() -> None:
    config = load_model(Path("c.yaml"), CtidConfig, text=GOOD, env={})
    with pytest.raises(ValidationError):
        config.asterisk[0].port = 1


# --- environment interpolation ---------------------------------------------------------------------


def with_secret(value: str) -> str:
    return GOOD.replace("s3cret-value", value)


@pytest.mark.parametrize(
    ("written", "env", "expected"),
    [
        ("${AMI_SECRET}", {"AMI_SECRET": "set"}, "set"),
        ("${AMI_SECRET:-fallback}", {"AMI_SECRET": "set"}, "set"),
        ("${AMI_SECRET:-fallback}", {}, "fallback"),
        ("${AMI_SECRET:-fallback}", {"AMI_SECRET": ""}, "fallback"),
        ("pre-${A}-${B:-b}-post", {"A": "a"}, "pre-a-b-post"),
        ("'$${NOT_A_VARIABLE}'", {}, "${NOT_A_VARIABLE}"),
        ("pa$$word", {}, "pa$$word"),
    ],
)
def test_environment_interpolation(written: str, env: dict[str, str], expected: str) -> None:
    config = load_model(Path("c.yaml"), CtidConfig, text=with_secret(written), env=env)
    assert config.asterisk[0].secret.get_secret_value() == expected


def test_interpolation_reaches_non_string_fields() -> None:
    text = GOOD.replace("port: 5038", "port: ${AMI_PORT:-5039}")
    assert load_model(Path("c.yaml"), CtidConfig, text=text, env={}).asterisk[0].port == 5039


def test_an_unset_variable_is_an_error_at_its_place() -> None:
    error = only_error(with_secret('"${AMI_SECRET}"'))
    assert error.startswith(
        "conf/ctid.yaml:6:13: asterisk[0].secret: environment variable AMI_SECRET is not set"
    )


def test_a_malformed_reference_is_an_error() -> None:
    error = only_error(with_secret('"${AMI SECRET}"'))
    assert error.startswith("conf/ctid.yaml:6:13: asterisk[0].secret: malformed reference")


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTID_TEST_SECRET", "from-process")
    config = load_model(Path("c.yaml"), CtidConfig, text=with_secret("${CTID_TEST_SECRET}"))
    assert config.asterisk[0].secret.get_secret_value() == "from-process"


# --- each kind of mistake --------------------------------------------------------------------------


def test_unknown_key_points_at_the_key() -> None:
    error = only_error(GOOD + "colour: blue\n")
    assert error.startswith("conf/ctid.yaml:7:1: colour: unknown key 'colour'")
    assert (
        "expected one of: agi, asterisk, database, log, redis, reports, routing, spool, wallboard, web"
        in error
    )


def test_a_typo_in_a_key_suggests_the_right_one() -> None:
    errors = errors_of(GOOD.replace("secret:", "secert:"))
    assert errors == [
        "conf/ctid.yaml:2:5: asterisk[0].secret: required key is missing",
        "conf/ctid.yaml:6:5: asterisk[0].secert: unknown key 'secert' (did you mean 'secret'?)",
    ]


def test_a_typo_in_a_nested_section_key() -> None:
    error = only_error(GOOD + "log:\n  levle: debug\n")
    assert error == "conf/ctid.yaml:8:3: log.levle: unknown key 'levle' (did you mean 'level'?)"


def test_wrong_type_points_at_the_value() -> None:
    error = only_error(GOOD.replace("port: 5038", "port: fifty"))
    assert error.startswith("conf/ctid.yaml:4:11: asterisk[0].port: Input should be a valid integer")


@pytest.mark.parametrize("port", ["-1", "0", "65536"])
def test_ports_outside_1_to_65535_are_refused(port: str) -> None:
    error = only_error(GOOD.replace("port: 5038", f"port: {port}"))
    assert error.startswith("conf/ctid.yaml:4:11: asterisk[0].port: Input should be")


def test_a_listener_port_is_checked_too() -> None:
    error = only_error(GOOD + "web: {host: 0.0.0.0, port: 70000}\n")
    assert error.startswith("conf/ctid.yaml:7:28: web.port: Input should be less than or equal to 65535")


def test_duplicate_key_names_both_places() -> None:
    error = only_error(GOOD + "    port: 5039\n")
    assert error == "conf/ctid.yaml:7:5: asterisk[0].port: duplicate key (first at line 4, column 5)"


def test_a_tab_used_for_indentation() -> None:
    error = only_error(GOOD.replace("    host:", "\thost:"))
    assert error == "conf/ctid.yaml:3:1: a TAB is used for indentation; indent with spaces"


def test_a_yaml_syntax_error() -> None:
    error = only_error(GOOD + "agi: {host: 127.0.0.1, port: 4573\n")
    assert error.startswith("conf/ctid.yaml:8:1: YAML syntax error: expected ',' or '}'")
    assert "line 7" in error


def test_missing_required_key_points_at_the_parent_mapping() -> None:
    error = only_error(GOOD.replace("    username: ctid\n", ""))
    assert error == "conf/ctid.yaml:2:5: asterisk[0].username: required key is missing"


def test_missing_top_level_key_in_an_empty_file() -> None:
    assert only_error("") == "conf/ctid.yaml:1:1: asterisk: required key is missing"


def test_a_document_that_is_not_a_mapping() -> None:
    assert only_error("- pbx1\n").startswith("conf/ctid.yaml:1:1: Input should be a valid dictionary")


def test_log_format_and_level_are_checked() -> None:
    errors = errors_of(GOOD + "log: {format: xml, level: verbose}\n")
    assert errors == [
        "conf/ctid.yaml:7:15: log.format: Input should be 'auto', 'json' or 'console'",
        "conf/ctid.yaml:7:27: log.level: Input should be 'debug', 'info', 'warning' or 'error'",
    ]


def test_server_names_must_be_unique() -> None:
    second = GOOD.split("\n", 1)[1].replace("port: 5038", "port: 5039")
    assert only_error(GOOD + second) == (
        "conf/ctid.yaml:2:3: asterisk: server name 'pbx1' is used twice (asterisk[0] and asterisk[1])"
    )


def test_at_least_one_server() -> None:
    assert only_error("asterisk: []\n") == "conf/ctid.yaml:1:11: asterisk: list at least one Asterisk server"


def test_reconnect_bounds_must_be_ordered() -> None:
    error = only_error(GOOD + "    reconnect_min_s: 60\n")
    assert error == (
        "conf/ctid.yaml:2:5: asterisk[0]: reconnect_min_s (60) is larger than reconnect_max_s (30)"
    )


def test_an_empty_secret_is_refused() -> None:
    assert "asterisk[0].secret" in only_error(with_secret('""'))


def test_every_error_is_reported_in_file_order() -> None:
    text = """\
    asterisk:
      - name: pbx1
        host: 127.0.0.1
        port: abc
        username: ctid
        secret: ${MISSING}
        tls: maybe
      - name: pbx2
        host: 127.0.0.1
        username: ctid
        secret: x
        port: -5
    agi: {host: 127.0.0.1, port: 4573, port: 4574}
    web: 8080
    log: {format: json, level: info, colour: yes}
    database: just-a-file.db
    """
    errors = errors_of(text)
    assert [error.split(": ", 2)[:2] for error in errors] == [
        ["conf/ctid.yaml:4:11", "asterisk[0].port"],
        ["conf/ctid.yaml:6:13", "asterisk[0].secret"],
        ["conf/ctid.yaml:7:10", "asterisk[0].tls"],
        ["conf/ctid.yaml:12:11", "asterisk[1].port"],
        ["conf/ctid.yaml:13:36", "agi.port"],
        ["conf/ctid.yaml:14:6", "web"],
        ["conf/ctid.yaml:15:34", "log.colour"],
        ["conf/ctid.yaml:16:11", "database"],
    ]


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    (error,) = caught.value.errors
    assert error.startswith(f"{tmp_path / 'nope.yaml'}: cannot read")


# --- locations for later cross-reference checks ----------------------------------------------------


def test_the_source_map_locates_values_and_keys() -> None:
    loaded = load_located(Path("c.yaml"), CtidConfig, text=GOOD + "log: {level: debug}\n", env={})
    assert loaded.model.log.level == "debug"
    assert loaded.source.locate(("asterisk", 0, "port")) == Location(4, 11)
    assert loaded.source.locate_key(("asterisk", 0, "port")) == Location(4, 5)
    assert loaded.source.locate(("log", "level")) == Location(7, 14)
    # An absent field is placed at the nearest mapping that is present.
    assert loaded.source.locate(("asterisk", 0, "ping_interval_s")) == Location(2, 5)
    assert loaded.source.error(("asterisk", 0, "name"), "no such server") == (
        "c.yaml:2:11: asterisk[0].name: no such server"
    )


# --- check-config ----------------------------------------------------------------------------------


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ctid.yaml"
    path.write_text(GOOD)
    assert check_config_command([str(path), str(SAMPLE)], env={}) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"OK {path}", f"OK {SAMPLE}"]
    assert err == ""


def test_check_config_prints_every_error_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("port: 5038", "port: 0") + "extra: 1\n")
    assert check_config_command([str(bad), str(good)], env={}) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"OK {good}"]
    assert err.splitlines() == [
        f"{bad}:4:11: asterisk[0].port: Input should be greater than or equal to 1",
        f"{bad}:7:1: extra: unknown key 'extra' "
        "(expected one of: agi, asterisk, database, log, redis, reports, routing, spool, wallboard, web)",
    ]


def test_check_config_with_nothing_to_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config_command([]) == 1
    assert "at least one file" in capsys.readouterr().err


# --- secrets ---------------------------------------------------------------------------------------


def test_secrets_never_appear_in_repr_or_str() -> None:
    text = with_secret("hunter2-ami") + "database: postgresql://ctid:hunter2-db@db/ctid\n"
    config = load_model(Path("c.yaml"), CtidConfig, text=text, env={})
    for shown in (repr(config), str(config), repr(config.asterisk[0]), str(config.asterisk[0])):
        assert "hunter2" not in shown
    assert config.database == "postgresql://ctid:hunter2-db@db/ctid"
    assert config.asterisk[0].secret.get_secret_value() == "hunter2-ami"


def test_redis_is_refused_until_it_has_a_job_and_the_refusal_hides_its_password() -> None:
    errors = errors_of(with_secret("s") + "redis: redis://:hunter2-redis@cache:6379/0\n")
    assert len(errors) == 1 and "redis: not supported yet" in errors[0]
    assert "hunter2" not in errors[0]
    empty = with_secret("s") + "redis: null\n"
    assert load_model(Path("c.yaml"), CtidConfig, text=empty, env={}).redis is None


def test_secrets_are_not_echoed_in_errors() -> None:
    errors = errors_of(with_secret("[hunter2]"))
    assert errors and not any("hunter2" in error for error in errors)


def test_models_can_be_built_in_code() -> None:
    server = AsteriskServer(name="pbx1", host="h", username="u", secret="s")  # type: ignore[arg-type]
    assert CtidConfig(asterisk=(server,)).agi.port == 4573
