"""The FastAGI protocol pieces that need no socket: decoding, replies, the environment, the log budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctid.config import load_config
from ctid.errors import ConfigError
from ivr.fastagi import (
    MAX_SESSIONS_CEILING,
    AgiReply,
    AgiSessionEnded,
    LogBudget,
    agi_quote,
    decode_line,
    default_max_sessions,
    parse_environment_line,
    parse_reply,
)
from ivr.server import IvrServer


def test_a_line_that_is_not_utf8_is_read_as_latin1() -> None:
    assert decode_line(b"agi_calleridname: Mu\xf1oz\n") == "agi_calleridname: Muñoz\n"
    assert decode_line("agi_calleridname: 张伟\n".encode()) == "agi_calleridname: 张伟\n"


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("200 result=1 (Zoë (VIP))", AgiReply(200, "1", "Zoë (VIP)", "200 result=1 (Zoë (VIP))")),
        ("200 result=0", AgiReply(200, "0", "", "200 result=0")),
        ("200 result= (timeout)", AgiReply(200, "", "timeout", "200 result= (timeout)")),
        ("200 result=0 endpos=1234", AgiReply(200, "0", "", "200 result=0 endpos=1234")),
        ("510 Invalid or unknown command", AgiReply(510, line="510 Invalid or unknown command")),
    ],
)
def test_replies_are_parsed(line: str, reply: AgiReply) -> None:
    assert parse_reply(line) == reply


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("HANGUP", "hangup"),
        ("511 Command Not Permitted on a dead channel or intercept routine", "hangup"),
        ("520-Invalid command syntax.  Proper usage follows:", "usage_error"),
        ("garbage", "bad_reply"),
        ("200 OK", "bad_reply"),
        ("", "bad_reply"),
        ("5000 result=1", "bad_reply"),
    ],
)
def test_hangups_usage_errors_and_garbage_end_the_session(line: str, reason: str) -> None:
    with pytest.raises(AgiSessionEnded) as ended:
        parse_reply(line)
    assert ended.value.reason == reason


def test_environment_lines() -> None:
    assert parse_environment_line("agi_uniqueid: 1700000000.1") == ("agi_uniqueid", "1700000000.1")
    assert parse_environment_line("agi_accountcode: ") == ("agi_accountcode", "")
    assert parse_environment_line("GET / HTTP/1.1") is None
    assert parse_environment_line("Host: example") is None


def test_a_quoted_value_never_becomes_a_second_command() -> None:
    assert agi_quote('a "b"\\\nHANGUP') == '"a \\"b\\"\\\\ HANGUP"'


def test_the_log_budget_lets_one_line_through_per_interval_with_the_count() -> None:
    budget = LogBudget(5.0)
    assert budget.admit("over_capacity", 100.0) == 1
    assert [budget.admit("over_capacity", 100.0 + i * 0.1) for i in range(1, 40)] == [None] * 39
    assert budget.admit("eof", 101.0) == 1  # each reason has its own budget
    assert budget.admit("over_capacity", 105.0) == 40  # the 39 held back and this one


def test_default_session_cap_is_a_quarter_of_the_file_limit_at_most_512() -> None:
    assert default_max_sessions(1024) == 256
    assert default_max_sessions(20_000) == MAX_SESSIONS_CEILING == 512
    assert default_max_sessions(8) == 2
    assert 1 <= default_max_sessions() <= 512


def test_ctid_yaml_agi_limits_reach_the_server(tmp_path: Path) -> None:
    config = tmp_path / "ctid.yaml"
    config.write_text(
        "asterisk:\n  - {name: pbx1, host: 127.0.0.1, username: ctid, secret: ctid}\n"
        "agi: {port: 0, max_sessions: 40, header_max_bytes: 8192, header_timeout_s: 2, idle_timeout_s: 30}\n"
    )
    ivr = IvrServer.from_settings(load_config(config).agi)
    assert (ivr.host, ivr.port, ivr.server.max_sessions) == ("127.0.0.1", 0, 40)
    limits = ivr.server.limits
    assert (limits.header_max_bytes, limits.header_timeout_s, limits.idle_timeout_s) == (8192, 2.0, 30.0)
    derived = load_config(config).agi.model_copy(update={"max_sessions": None})
    assert IvrServer.from_settings(derived).server.max_sessions == default_max_sessions()


@pytest.mark.parametrize(
    ("agi", "message"),
    [
        ("{max_sessions: 0}", "agi.max_sessions"),
        ("{header_max_bytes: 10}", "agi.header_max_bytes"),
        ("{idle_timeout_s: 0}", "agi.idle_timeout_s"),
        ("{max_session: 10}", "agi.max_session"),
    ],
)
def test_agi_limits_are_checked_with_file_and_line(tmp_path: Path, agi: str, message: str) -> None:
    config = tmp_path / "ctid.yaml"
    config.write_text(
        f"asterisk:\n  - {{name: pbx1, host: 127.0.0.1, username: ctid, secret: ctid}}\nagi: {agi}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_config(config)
    [line] = error.value.errors
    assert line.startswith(f"{config}:3:") and message in line
