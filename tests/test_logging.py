"""Logging: one JSON line per event with the call bound, secrets redacted, numbers masked above debug."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from ctid.logging import bind_call, configure_logging, get_logger, mask_number


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def configured(level: str = "info", fmt: str = "json") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(fmt, level, stream)
    return stream


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("13800001111", "*******1111"),
        ("+8613800001111", "+*********1111"),
        ("138-0000-1111", "***-****-1111"),
        ('"张伟" <13800001111>', '"张伟" <*******1111>'),
        ("1001", "1001"),
        ("112", "112"),
        ("", ""),
        ("anonymous", "anonymous"),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    assert mask_number(number) == masked


def test_json_line_has_the_bound_call_and_the_standard_fields() -> None:
    stream = configured()
    log = bind_call(
        get_logger("ctid.routing"), linkedid="1700000000.12", uniqueid="1700000000.13", agent="1001"
    )
    log.info("call_routed", queue="sales")
    (line,) = json_lines(stream)
    assert line["event"] == "call_routed"
    assert line["linkedid"] == "1700000000.12"
    assert line["uniqueid"] == "1700000000.13"
    assert line["agent"] == "1001"
    assert line["queue"] == "sales"
    assert line["level"] == "info"
    assert line["logger"] == "ctid.routing"
    assert line["timestamp"].endswith("Z")
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]


def test_bind_call_leaves_out_what_is_not_known() -> None:
    stream = configured()
    bind_call(get_logger("ctid.state"), linkedid="1.1").info("call_started")
    (line,) = json_lines(stream)
    assert line["linkedid"] == "1.1"
    assert "uniqueid" not in line and "agent" not in line


def test_secrets_are_redacted_at_any_depth_and_any_level() -> None:
    stream = configured("debug")
    get_logger("ctid.ami").debug(
        "ami_action_sent",
        secret="s1",
        password="s2",
        api_token="s3",
        Authorization="Bearer s4",
        action={"Action": "Login", "Username": "ctid", "Secret": "s5"},
    )
    (line,) = json_lines(stream)
    text = json.dumps(line)
    for secret in ("s1", "s2", "s3", "s4", "s5"):
        assert f'"{secret}"' not in text and "Bearer" not in text
    assert line["secret"] == line["password"] == line["api_token"] == line["Authorization"] == "***"
    assert line["action"] == {"Action": "Login", "Username": "ctid", "Secret": "***"}


def test_numbers_are_masked_at_info() -> None:
    stream = configured("info")
    get_logger("ctid.screenpop").info(
        "screen_popped",
        caller="13800001111",
        caller_num="13800002222",
        callerid='"张伟" <13800003333>',
        number=13800004444,
        phone="+8613800005555",
        connected_num="13800006666",
        headers={"CallerIDNum": "13800007777", "Exten": "1001"},
        agent="1001",
    )
    (line,) = json_lines(stream)
    assert line["caller"] == "*******1111"
    assert line["caller_num"] == "*******2222"
    assert line["callerid"] == '"张伟" <*******3333>'
    assert line["number"] == "*******4444"
    assert line["phone"] == "+*********5555"
    assert line["connected_num"] == "*******6666"
    assert line["headers"] == {"CallerIDNum": "*******7777", "Exten": "1001"}
    assert line["agent"] == "1001"


def test_caller_id_names_are_masked_at_info_and_never_carry_control_characters() -> None:
    stream = configured("info")
    get_logger("ctid.daemon").info(
        "CallArrived",
        caller_name="张伟",
        headers={"CallerIDName": "\x1b[2JMuñoz", "ConnectedLineName": ""},
        name="alice",  # an agent's name from routing.yaml is not a caller's
    )
    (line,) = json_lines(stream)
    assert line["caller_name"] == "张*"
    assert line["headers"] == {"CallerIDName": "?********", "ConnectedLineName": ""}
    assert line["name"] == "alice"


def test_numbers_are_kept_at_debug() -> None:
    stream = configured("debug")
    get_logger("ctid.screenpop").info("screen_popped", caller="13800001111")
    (line,) = json_lines(stream)
    assert line["caller"] == "13800001111"


def test_a_logger_bound_before_reconfiguring_follows_the_new_level() -> None:
    configured("debug")
    log = bind_call(get_logger("ctid.routing"), linkedid="1.1")
    stream = configured("info")
    log.info("call_routed", caller="13800001111")
    log.debug("not_shown")
    (line,) = json_lines(stream)
    assert line["caller"] == "*******1111"


def test_levels_below_the_configured_one_are_dropped() -> None:
    stream = configured("warning")
    log = get_logger("ctid.ami")
    log.info("ami_event")
    log.warning("ami_reconnecting", attempt=2)
    assert [line["event"] for line in json_lines(stream)] == ["ami_reconnecting"]


def test_standard_library_lines_come_out_as_json_too() -> None:
    stream = configured("info")
    logging.getLogger("panoramisk.manager").warning("connection lost to %s", "pbx1", extra={"password": "pw"})
    (line,) = json_lines(stream)
    assert line["event"] == "connection lost to pbx1"
    assert line["level"] == "warning"
    assert line["logger"] == "panoramisk.manager"
    assert line["password"] == "***"
    assert "timestamp" in line


def test_exceptions_are_part_of_the_json_line() -> None:
    stream = configured()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("ctid").exception("handler_failed", linkedid="1.1")
    (line,) = json_lines(stream)
    assert line["level"] == "error"
    assert "RuntimeError: boom" in line["exception"]


def test_unicode_stays_readable_in_json() -> None:
    stream = configured()
    get_logger("ctid").info("caller_identified", name="张伟")
    assert "张伟" in stream.getvalue()


def test_auto_is_json_when_not_a_terminal() -> None:
    stream = configured("info", "auto")
    get_logger("ctid").info("started")
    assert json_lines(stream)[0]["event"] == "started"


def test_auto_is_console_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    configure_logging("auto", "info", stream)
    get_logger("ctid").info("started", caller="13800001111")
    text = stream.getvalue()
    assert "started" in text and "*******1111" in text
    assert not text.lstrip().startswith("{")


def test_console_format_on_a_plain_stream() -> None:
    stream = configured("info", "console")
    logging.getLogger("panoramisk").info("plain stdlib line")
    text = stream.getvalue()
    assert "plain stdlib line" in text and "[panoramisk]" in text


def test_reconfiguring_replaces_the_handler() -> None:
    first = configured()
    second = configured()
    get_logger("ctid").info("once")
    assert first.getvalue() == ""
    assert len(json_lines(second)) == 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml")
    with pytest.raises(ValueError, match="log level"):
        configure_logging("json", "verbose")
