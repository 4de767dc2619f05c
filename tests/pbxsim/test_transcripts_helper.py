"""tests/transcripts.py reads every capture into its sessions, actions and exact bytes."""

from __future__ import annotations

from tests.transcripts import SCENARIOS, TRANSCRIPT_DIR, load_agi_transcript, load_transcript


def test_every_scenario_is_there() -> None:
    assert sorted(p.name.split(".")[0] for p in TRANSCRIPT_DIR.glob("*.ami.txt")) == sorted(SCENARIOS)


def test_sessions_start_with_the_banner_and_a_login() -> None:
    for name in SCENARIOS:
        for session in load_transcript(name).sessions:
            assert session.received.startswith(b"Asterisk Call Manager/13.0.0\r\n")
            assert session.received.endswith(b"\r\n\r\n")
            assert session.actions[0].name == "Login"
            assert session.messages()[0].fields[:2] == (("Response", "Success"), ("ActionID", "login-1"))


def test_resync_is_split_into_its_two_sessions() -> None:
    first, second = load_transcript("resync").sessions
    assert [a.name for a in second.actions] == [
        "Login",
        "CoreShowChannels",
        "Status",
        "DeviceStateList",
        "ExtensionStateList",
        "Getvar",
        "Ping",
        "NoSuchAction",
        "Logoff",
    ]
    assert [a.name for a in first.actions][-3:] == ["Hangup", "Hangup", "Logoff"]
    assert sum(m.name == "SuccessfulAuth" for m in first.events()) == 2  # its own login, then the second's
    assert sum(m.name == "RequestBadFormat" for m in second.events()) == 1
    assert second.messages()[-1].name == "Goodbye"


def test_agi_sessions() -> None:
    (session,) = load_agi_transcript("inbound-answered").sessions
    assert session.script == "inbound"
    assert session.environment[0] == ("agi_network", "yes")
    assert session.exchanges[0] == ("GET VARIABLE CALLERID(num)", "200 result=1 (13800001111)")
    assert len(load_agi_transcript("resync").sessions) == 2
    assert load_agi_transcript("outbound-failed").sessions == ()
