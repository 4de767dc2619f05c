"""AmiSession without sockets or sleeps: bytes and a clock in, typed outputs out."""

from __future__ import annotations

import random
from itertools import islice

from ctid.ami import events as ev
from ctid.ami.message import AmiMessage
from ctid.ami.parser import AmiParser
from ctid.ami.session import (
    PONG_GRACE,
    ActionCompleted,
    ActionFailed,
    AmiSession,
    LoggedIn,
    Malformed,
    Notice,
    ResyncFailed,
    ResyncReady,
    SendData,
    SessionOutput,
    backoff,
)

BANNER = b"Asterisk Call Manager/20.0.0\r\n"


def msg(*pairs: tuple[str, str]) -> bytes:
    return AmiMessage(pairs).to_bytes()


def action_of(data: bytes) -> AmiMessage:
    (message,) = AmiParser(expect_banner=False).feed(data)
    return message


def fresh(**kwargs: object) -> AmiSession:
    session = AmiSession(**kwargs)  # type: ignore[arg-type]
    session.connection_made()
    assert session.receive(BANNER, 0.0) == []
    return session


def logged_in(now: float = 1.0, **kwargs: object) -> AmiSession:
    session = fresh(**kwargs)
    aid, _ = session.send_action("Login", {"Username": "ctid", "Secret": "s"}, now)
    out = session.receive(msg(("Response", "Success"), ("ActionID", aid), ("Message", "ok")), now)
    assert [type(o) for o in out] == [ActionCompleted, LoggedIn]
    return session


def newchannel(uid: str) -> bytes:
    return msg(("Event", "Newchannel"), ("Channel", f"PJSIP/a-{uid}"), ("Uniqueid", uid), ("Linkedid", uid))


def events(outputs: list[SessionOutput]) -> list[ev.AmiEvent]:
    return [o for o in outputs if isinstance(o, ev.AmiEvent)]


def test_send_action_gives_a_fresh_action_id_and_the_wire_bytes() -> None:
    session = fresh()
    first, data = session.send_action("Getvar", {"Channel": "PJSIP/a-1", "Variable": "X"}, 0.0)
    second, _ = session.send_action("Getvar", {"Variable": "Y"}, 0.0)
    assert first != second
    sent = action_of(data)
    assert sent.first == ("Action", "Getvar") and sent.get("ActionID") == first
    assert sent.get("Channel") == "PJSIP/a-1" and sent.get("Variable") == "X"


def test_responses_are_matched_by_action_id_when_interleaved_with_events() -> None:
    session = logged_in()
    a, _ = session.send_action("Getvar", {"Variable": "A"}, 2.0)
    b, _ = session.send_action("Originate", {"Channel": "PJSIP/1001"}, 2.0)
    stream = (
        newchannel("1.1")
        + msg(("Response", "Error"), ("ActionID", b), ("Message", "Originate failed: no such device"))
        + newchannel("1.2")
        + msg(("Response", "Success"), ("ActionID", a), ("Value", "va"))
        + msg(("Response", "Success"), ("ActionID", "not-ours"))  # someone else's: ignored
    )
    out = session.receive(stream, 3.0)
    assert [type(o).__name__ for o in out] == [
        "Newchannel",
        "ActionCompleted",
        "Newchannel",
        "ActionCompleted",
    ]
    failed, answered = out[1], out[3]
    assert isinstance(failed, ActionCompleted) and isinstance(answered, ActionCompleted)
    assert (failed.action_id, failed.action, failed.ok) == (b, "Originate", False)
    assert failed.message == "Originate failed: no such device"  # Asterisk's own words
    assert (answered.action_id, answered.ok, answered.response.get("Value")) == (a, True, "va")
    assert [e.chan.uniqueid for e in events(out) if isinstance(e, ev.Newchannel)] == ["1.1", "1.2"]


def test_a_response_split_across_reads_completes_once_whole() -> None:
    session = logged_in()
    aid, _ = session.send_action("Ping", {}, 2.0)
    raw = msg(("Response", "Success"), ("ActionID", aid), ("Ping", "Pong"))
    assert session.receive(raw[:7], 2.1) == []
    (done,) = session.receive(raw[7:], 2.2)
    assert isinstance(done, ActionCompleted) and done.action_id == aid


def test_a_list_collects_its_events_until_complete_while_live_events_pass() -> None:
    session = logged_in()
    aid, _ = session.send_action("CoreShowChannels", {}, 2.0, is_list=True)
    out = session.receive(
        msg(("Response", "Success"), ("ActionID", aid), ("EventList", "start"))
        + msg(("Event", "CoreShowChannel"), ("ActionID", aid), ("Channel", "PJSIP/a-1"), ("Uniqueid", "1.1"))
        + newchannel("9.9")  # a live event between two list items is delivered, not listed
        + msg(("Event", "CoreShowChannel"), ("ActionID", aid), ("Channel", "PJSIP/b-2"), ("Uniqueid", "2.2")),
        3.0,
    )
    assert [type(o).__name__ for o in out] == ["Newchannel"]
    (done,) = session.receive(msg(("Event", "CoreShowChannelsComplete"), ("ActionID", aid)), 3.5)
    assert isinstance(done, ActionCompleted) and done.ok and done.action == "CoreShowChannels"
    assert [item.get("Uniqueid") for item in done.items] == ["1.1", "2.2"]
    # the list is closed: the next event takes the hot path again
    assert [type(o).__name__ for o in session.receive(newchannel("3.3"), 4.0)] == ["Newchannel"]


def test_an_error_answer_to_a_list_action_is_an_empty_list() -> None:
    session = logged_in()
    aid, _ = session.send_action("ExtensionStateList", {}, 2.0, is_list=True)
    (done,) = session.receive(
        msg(("Response", "Error"), ("ActionID", aid), ("Message", "No extension states")), 2.5
    )
    assert isinstance(done, ActionCompleted) and done.items == () and not done.ok
    assert [type(o).__name__ for o in session.receive(newchannel("1.1"), 3.0)] == ["Newchannel"]


def answer_resync(
    session: AmiSession, first: SendData, now: float, between: bytes = b""
) -> list[SessionOutput]:
    """Play Asterisk for a whole resync; `between` arrives right after CoreShowChannels has answered."""
    outputs: list[SessionOutput] = []
    send: SendData | None = first
    while send is not None:
        request = action_of(send.data)
        aid = request.get("ActionID", "")
        name = request.name
        if name == "Ping":
            out = session.receive(
                msg(("Response", "Success"), ("ActionID", aid), ("Timestamp", "1700.5")), now
            )
        elif name == "ExtensionStateList":
            out = session.receive(msg(("Response", "Error"), ("ActionID", aid), ("Message", "none")), now)
        else:
            head = msg(("Response", "Success"), ("ActionID", aid), ("EventList", "start"))
            item = {
                "CoreShowChannels": msg(
                    ("Event", "CoreShowChannel"),
                    ("ActionID", aid),
                    ("Channel", "PJSIP/a-1"),
                    ("Uniqueid", "1.1"),
                ),
                "Status": b"",
                "DeviceStateList": msg(
                    ("Event", "DeviceStateChange"),
                    ("ActionID", aid),
                    ("Device", "PJSIP/1001"),
                    ("State", "INUSE"),
                ),
            }[name]
            out = session.receive(head, now)
            if name == "CoreShowChannels":
                out += session.receive(between, now)
            out += session.receive(item + msg(("Event", f"{name}Complete"), ("ActionID", aid)), now)
        outputs += out
        send = next((o for o in out if isinstance(o, SendData)), None)
        if send is not None:
            assert send.deadline == now + session.action_timeout
    return outputs


def test_a_resync_holds_the_events_after_the_snapshot_and_delivers_them_after_it_in_order() -> None:
    session = logged_in()
    first = session.begin_resync(2.0)
    assert action_of(first.data).name == "Ping" and session.resyncing
    before = session.receive(newchannel("0.1"), 2.0)  # before the snapshot: delivered at once
    assert [type(o).__name__ for o in before] == ["Newchannel"]
    later = newchannel("5.1") + msg(("Event", "Hangup"), ("Channel", "PJSIP/a-1"), ("Uniqueid", "1.1"))
    out = answer_resync(session, first, 3.0, between=later)
    sent = [action_of(o.data).name for o in out if isinstance(o, SendData)]
    assert sent == ["CoreShowChannels", "Status", "DeviceStateList", "ExtensionStateList"]
    rest = [o for o in out if not isinstance(o, SendData)]
    assert [type(o).__name__ for o in rest] == ["ResyncReady", "Newchannel", "Hangup"]
    ready = rest[0]
    assert isinstance(ready, ResyncReady) and ready.held == 2
    snapshot = ready.snapshot
    assert snapshot.server_time == 1700.5
    assert [c.chan.uniqueid for c in snapshot.channels] == ["1.1"]
    assert [d.device for d in snapshot.devices] == ["PJSIP/1001"] and snapshot.extensions == []
    assert not session.resyncing
    assert [type(o).__name__ for o in session.receive(newchannel("6.1"), 4.0)] == ["Newchannel"]


def test_an_action_past_its_deadline_fails_by_the_injected_clock_and_a_late_answer_is_dropped() -> None:
    session = logged_in(action_timeout=5.0)
    slow, _ = session.send_action("Getvar", {}, 10.0)
    quick, _ = session.send_action("Getvar", {}, 10.0, timeout=1.0)
    assert session.timeouts(10.9) == []
    (failed,) = session.timeouts(11.0)
    assert isinstance(failed, ActionFailed) and (failed.action_id, failed.timed_out) == (quick, True)
    assert session.timeouts(12.0) == []  # given out once
    (failed,) = session.timeouts(15.0)
    assert isinstance(failed, ActionFailed) and failed.action_id == slow
    late = session.receive(msg(("Response", "Success"), ("ActionID", quick)), 16.0)
    assert late == []  # its failure was already given out


def test_a_late_ping_answer_still_counts_for_liveness() -> None:
    session = logged_in(now=0.0, stale_after=10.0, action_timeout=2.0)
    aid, _ = session.send_action("Ping", {}, 5.0)
    assert [type(o) for o in session.timeouts(7.0)] == [ActionFailed]
    session.receive(msg(("Response", "Success"), ("ActionID", aid), ("Ping", "Pong")), 8.0)
    assert session.last_pong == 8.0


def test_a_resync_action_without_answer_fails_the_resync() -> None:
    session = logged_in(action_timeout=3.0)
    first = session.begin_resync(2.0)
    out = session.timeouts(first.deadline)
    assert [type(o) for o in out] == [ActionFailed, ResyncFailed] and not session.resyncing


def test_a_lost_connection_fails_every_waiting_action_at_once() -> None:
    session = logged_in()
    a, _ = session.send_action("Getvar", {}, 2.0)
    b, _ = session.send_action("Status", {}, 2.0, is_list=True)
    failed = session.connection_lost("gone")
    assert {f.action_id for f in failed} == {a, b} and all(not f.timed_out for f in failed)
    assert not session.logged_in and session.timeouts(100.0) == []


def test_liveness_follows_the_clock() -> None:
    session = fresh(stale_after=10.0)
    assert not session.liveness(0.0).live  # not logged in
    aid, _ = session.send_action("Login", {}, 100.0)
    session.receive(msg(("Response", "Success"), ("ActionID", aid)), 100.0)
    assert session.liveness(110.0).live and not session.liveness(110.1).live  # silence
    session.receive(newchannel("1.1"), 110.0)  # events keep the session live...
    state = session.liveness(119.0)
    assert state.live and state.silent_s == 9.0 and state.unanswered_ping_s == 19.0
    for t in range(120, 131, 5):
        session.receive(newchannel(f"{t}.1"), float(t))
    # ...but not a Ping left unanswered for PONG_GRACE times stale_after
    assert session.liveness(100.0 + PONG_GRACE * 10.0).live
    assert not session.liveness(100.0 + PONG_GRACE * 10.0 + 0.1).live
    ping, _ = session.send_action("Ping", {}, 131.0)
    session.receive(msg(("Response", "Success"), ("ActionID", ping)), 131.0)
    assert session.liveness(140.0).live


def test_bytes_that_make_no_message_do_not_count_as_a_message() -> None:
    session = logged_in(now=0.0, stale_after=10.0, max_message_bytes=100)
    assert session.receive(b"Event: Endless\r\nData: " + b"x" * 500, 5.0) == []
    assert session.last_message == 0.0 and session.parser.buffered <= 100
    out = session.receive(b"x" * 500 + b"\r\n\r\n", 6.0)  # the end of a message too large: skipped
    assert session.last_message == 0.0
    assert [type(o) for o in out] == [Malformed, Notice]
    assert isinstance(out[1], Notice) and out[1].event == "ami_message_too_large"


def test_the_backoff_doubles_from_min_to_max_and_a_login_resets_it() -> None:
    session = fresh(reconnect_min=0.5, reconnect_max=30.0)
    delays = [session.next_reconnect_delay() for _ in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert list(islice(backoff(0.5, 30.0), 9)) == delays
    aid, _ = session.send_action("Login", {}, 50.0)
    session.receive(msg(("Response", "Success"), ("ActionID", aid)), 50.0)
    assert session.next_reconnect_delay() == 0.5
    # a refused login does not reset it
    session.connection_made()
    aid, _ = session.send_action("Login", {}, 60.0)
    (refused,) = session.receive(BANNER + msg(("Response", "Error"), ("ActionID", aid)), 60.0)
    assert isinstance(refused, ActionCompleted) and not refused.ok and not session.logged_in
    assert session.next_reconnect_delay() == 1.0


def test_the_backoff_jitter_comes_from_the_injected_rng_and_stays_within_half_either_side() -> None:
    a = fresh(reconnect_min=1.0, reconnect_max=8.0, rng=random.Random(7))
    b = fresh(reconnect_min=1.0, reconnect_max=8.0, rng=random.Random(7))
    first = [a.next_reconnect_delay() for _ in range(8)]
    assert first == [b.next_reconnect_delay() for _ in range(8)]  # deterministic for one seed
    for delay, plain in zip(first, [1, 2, 4, 8, 8, 8, 8, 8], strict=True):
        assert 0.5 * plain <= delay <= 1.5 * plain


def test_event_counts_are_bounded_and_survive_a_new_connection() -> None:
    session = logged_in()
    session.receive(b"".join(b"Event: Invented%d\r\n\r\n" % i for i in range(50)) + newchannel("1.1"), 2.0)
    session.connection_made()
    session.receive(BANNER + newchannel("2.2"), 3.0)
    assert session.event_counts == {"other": 50, "Newchannel": 2}


def test_real_asterisk_resync_session_replayed_lists_and_answers_come_back_whole() -> None:
    """The second session of the resync capture (a real Asterisk), re-keyed to the session's ActionIDs."""
    from tests.transcripts import load_transcript

    lists = {"CoreShowChannels", "Status", "DeviceStateList", "ExtensionStateList"}
    session = AmiSession()
    session.connection_made()
    ours: dict[str, str] = {}
    names: dict[str, str] = {}
    items_seen: dict[str, int] = {}
    outputs: list[SessionOutput] = [*session.receive(BANNER, 0.0)]
    now = 0.0
    for direction, message in load_transcript("resync").sessions[1].exchange:
        now += 0.001
        theirs = message.get("ActionID")
        if direction == "sent":
            headers = {k: v for k, v in message.fields if k not in ("Action", "ActionID")}
            action_id, _ = session.send_action(message.name, headers, now, is_list=message.name in lists)
            assert theirs is not None
            ours[theirs], names[action_id] = action_id, message.name
            continue
        fields = [(k, ours.get(v, v) if k == "ActionID" else v) for k, v in message.fields]
        if theirs in ours and message.is_event and not message.name.endswith("Complete"):
            items_seen[ours[theirs]] = items_seen.get(ours[theirs], 0) + 1
        outputs += session.receive(AmiMessage(fields).to_bytes(), now)
    done = {o.action: o for o in outputs if isinstance(o, ActionCompleted)}
    assert sorted(o.action for o in outputs if isinstance(o, ActionCompleted)) == sorted(names.values())
    for name in lists:
        answer = done[name]
        assert answer.ok and len(answer.items) == items_seen.get(answer.action_id, 0)
        assert all(item.get("ActionID") == answer.action_id for item in answer.items)
    assert len(done["CoreShowChannels"].items) >= 2  # the caller who waits and the one who talks
    assert done["Getvar"].ok and done["Ping"].response.get("Ping") == "Pong"
    assert not done["NoSuchAction"].ok and done["NoSuchAction"].message  # Asterisk's words, typed
    assert not any(isinstance(o, ActionFailed) for o in outputs)
    list_ids = {done[name].action_id for name in lists}
    assert not [o for o in outputs if isinstance(o, ev.AmiEvent) and o.action_id in list_ids]  # not leaked


def test_the_session_module_loads_no_io() -> None:
    import subprocess
    import sys

    probe = "import sys, ctid.ami.session; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    assert not loaded & {
        "asyncio",
        "socket",
        "panoramisk",
        "structlog",
        "prometheus_client",
        "ctid.ami.client",
    }
