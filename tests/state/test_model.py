"""The call-state model on its own: device names, resync from Asterisk's lists, robustness."""

from __future__ import annotations

from ctid.ami import events as ev
from ctid.ami.message import AmiMessage
from ctid.ami.parser import AmiParser
from ctid.replay import transcript_sessions
from ctid.state import CallState, CallStateModel, device_of
from tests.transcripts import TRANSCRIPT_DIR


def test_device_of_strips_channel_suffixes() -> None:
    assert device_of("PJSIP/1001-0000000a") == "PJSIP/1001"
    assert device_of("Local/1001@sim-phones-00000007;1") == "Local/1001@sim-phones"
    assert device_of("Local/1001@sim-phones-00000007;2") == "Local/1001@sim-phones"
    assert device_of("PJSIP/trunk-provider-0000001f") == "PJSIP/trunk-provider"
    assert device_of("PJSIP/1001") == "PJSIP/1001"
    assert device_of("Local/p3600@sim-callers") == "Local/p3600@sim-callers"


def resync_lists() -> tuple[list[ev.CoreShowChannel], list[ev.ChannelStatus], list[ev.DeviceStateChange]]:
    text = (TRANSCRIPT_DIR / "resync.ami.txt").read_text("utf-8")
    second = transcript_sessions(text)[1]
    decoded = [ev.decode_event(m) for m in AmiParser().feed(second) if m.is_event and m.action_id]
    return (
        [e for e in decoded if isinstance(e, ev.CoreShowChannel)],
        [e for e in decoded if isinstance(e, ev.ChannelStatus)],
        [e for e in decoded if isinstance(e, ev.DeviceStateChange)],
    )


def test_a_fresh_model_rebuilds_calls_from_the_resync_lists() -> None:
    channels, statuses, devices = resync_lists()
    assert len(channels) == 6 and len(statuses) == 6 and len(devices) == 7
    model = CallStateModel()
    model.resync(channels, statuses, devices, now=1795383492.9)
    calls = {c.caller_name: c for c in model.active_calls()}
    assert set(calls) == {"陈静", "Đặng Thị Hoa"}
    assert calls["陈静"].state is CallState.WAITING
    talking = calls["Đặng Thị Hoa"]
    assert talking.state is CallState.CONNECTED
    assert talking.agent == "Local/1001@sim-phones"
    assert model.agents["Local/1001@sim-phones"].call == talking.linkedid
    assert model.devices["Custom:agent-1001"] == "INUSE"


def test_resync_ends_calls_whose_channels_vanished_and_keeps_listed_ones() -> None:
    channels, statuses, devices = resync_lists()
    model = CallStateModel()
    model.resync(channels, statuses, devices, now=100.0)
    waiting = [c for c in channels if c.chan.linkedid == channels[2].chan.linkedid]
    events = model.resync(waiting, [], [], now=200.0)
    ended = [e for e in events if e.kind == "CallEnded"]
    assert len(ended) == 1 and ended[0].disposition == "lost"  # type: ignore[attr-defined]
    assert [c.caller_name for c in model.active_calls()] == ["陈静"]


def test_queue_and_customer_come_back_from_status_variables() -> None:
    channels, _, _ = resync_lists()
    contact = next(c for c in channels if c.chan.context == "ctid-wait")
    status = ev.decode_event(
        AmiMessage(
            [
                ("Event", "Status"),
                ("Channel", contact.chan.channel),
                ("ChannelState", "6"),
                ("Uniqueid", contact.chan.uniqueid),
                ("Linkedid", contact.chan.linkedid),
                ("Context", "ctid-wait"),
                ("Variable", "CTID_QUEUE=sales"),
                ("Variable", "CTID_TIER=A"),
                ("ActionID", "x"),
            ]
        )
    )
    assert isinstance(status, ev.ChannelStatus)
    model = CallStateModel()
    model.resync(channels, [status], [], now=1.0)
    call = model.calls[contact.chan.linkedid]
    assert (call.queue, call.tier, call.state) == ("sales", "A", CallState.WAITING)


def test_unknown_and_malformed_events_are_counted_never_fatal() -> None:
    model = CallStateModel()
    assert model.apply(ev.decode_event(AmiMessage([("Event", "SomethingNew"), ("X", "1")])), 1.0) == []
    # a channel event with no Channel header cannot be typed: it is an unknown event, not a crash
    assert model.apply(ev.decode_event(AmiMessage([("Event", "Newstate"), ("Uniqueid", "1")])), 1.0) == []
    # events about channels the model never saw are adopted or ignored
    hangup = AmiMessage([("Event", "Hangup"), ("Channel", "PJSIP/x-1"), ("Uniqueid", "9.9"), ("Cause", "16")])
    assert model.apply(ev.decode_event(hangup), 1.0) == []
    assert model.unknown_events == {"SomethingNew": 1, "Newstate": 1}


def _outbound_failed_messages() -> list[AmiMessage]:
    text = (TRANSCRIPT_DIR / "outbound-failed.ami.txt").read_text("utf-8")
    return [m for m in AmiParser().feed(transcript_sessions(text)[0]) if m.is_event]


def _fold(messages: list[AmiMessage]) -> CallStateModel:
    model = CallStateModel()
    for msg in messages:
        event = ev.decode_event(msg)
        model.apply(event, event.ts or 0.0)
    return model


def test_a_failed_originate_is_matched_whether_its_answer_comes_first_or_last() -> None:
    """On a real Asterisk the OriginateResponse may precede the Newchannel or follow the Hangups."""
    messages = _outbound_failed_messages()
    responses = [m for m in messages if m.name == "OriginateResponse"]
    others = [m for m in messages if m.name != "OriginateResponse"]
    busy, ring_out = responses  # b5550003 (reason 5), q5550004 (reason 3)
    model = _fold([busy, *others, ring_out])
    calls = model.all_calls()
    assert [(c.caller_num, c.disposition) for c in calls] == [("b5550003", "busy"), ("q5550004", "no-answer")]
    for call in calls:
        assert [e["kind"] for e in call.timeline if e["kind"] in ("OriginateFailed", "CallEnded")] == [
            "OriginateFailed",
            "CallEnded",
        ]


def test_an_attended_transfer_completes_whichever_order_the_merge_reports_its_moves() -> None:
    """The transferer leaves the consult bridge before the BridgeMerge when it hangs up first (as captured),
    or after the merge moved the target when Asterisk kicks it (seen on a loaded machine): same call."""
    text = (TRANSCRIPT_DIR / "attended-transfer.ami.txt").read_text("utf-8")
    messages = [m for m in AmiParser().feed(transcript_sessions(text)[0]) if m.is_event]
    merge = next(m for m in messages if m.name == "BridgeMerge")
    consult = merge["FromBridgeUniqueid"]
    transferer_leaves = next(
        m
        for m in messages
        if m.name == "BridgeLeave"
        and m["BridgeUniqueid"] == consult
        and m["Channel"].startswith("Local/1001@")
    )
    target_enters = next(
        m
        for m in messages[messages.index(merge) :]
        if m.name == "BridgeEnter" and m["Channel"].startswith("Local/1004@")
    )
    kicked = [m for m in messages if m is not transferer_leaves]
    kicked.insert(kicked.index(target_enters) + 1, transferer_leaves)

    def story(model: CallStateModel) -> list[tuple[str, str]]:
        (call,) = model.all_calls()
        return [
            (e["kind"], e.get("agent", "")) for e in call.timeline if e["kind"].startswith(("Call", "Agent"))
        ]

    captured, reordered = story(_fold(messages)), story(_fold(kicked))
    assert reordered == captured
    assert ("CallConnected", "Local/1004@sim-phones") in reordered
