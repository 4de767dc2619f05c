"""No contact is stranded: a caller whose IVR step failed waits in a queue routing knows, and channels whose
Hangup was never seen are reaped once Asterisk's list confirms they are gone."""

from __future__ import annotations

from ctid.ami import events as ev
from ctid.ami.message import AmiMessage
from ctid.state import CallState, CallStateModel
from ctid.state import domain as d

QUEUES = {"sales", "support", "general"}
DNIS = {"4000": "sales", "4001": "support"}


def resolve(dnis: str, asked: str) -> str:
    """routing.yaml in miniature: known CTID_QUEUE, else the number's queue, else default_queue."""
    if asked in QUEUES:
        return asked
    return DNIS.get(dnis, "general")


def channel_event(name: str, uid: str, context: str, exten: str, **more: str) -> ev.AmiEvent:
    headers = [
        ("Event", name),
        ("Channel", f"PJSIP/trunk-{uid[-1]:0>8}"),
        ("ChannelState", "6"),
        ("CallerIDNum", "13800001111"),
        ("CallerIDName", "Zoë"),
        ("ConnectedLineNum", ""),
        ("ConnectedLineName", ""),
        ("Context", context),
        ("Exten", exten),
        ("Priority", "1"),
        ("Uniqueid", uid),
        ("Linkedid", uid),
        *more.items(),
    ]
    return ev.decode_event(AmiMessage(headers))


def arrive(model: CallStateModel, uid: str, dnis: str, now: float) -> list[d.DomainEvent]:
    out = model.apply(channel_event("Newchannel", uid, "ctid-inbound", dnis), now)
    out += model.apply(channel_event("Newexten", uid, "ctid-inbound", dnis, Application="Answer"), now)
    return out


def set_queue(model: CallStateModel, uid: str, context: str, value: str, now: float) -> list[d.DomainEvent]:
    return model.apply(channel_event("VarSet", uid, context, "s", Variable="CTID_QUEUE", Value=value), now)


def enter_wait(model: CallStateModel, uid: str, now: float) -> list[d.DomainEvent]:
    return model.apply(channel_event("Newexten", uid, "ctid-wait", "s", Application="MusicOnHold"), now)


def kinds(events: list[d.DomainEvent]) -> list[str]:
    return [e.kind for e in events]


def test_a_caller_whose_ivr_step_failed_waits_in_the_queue_of_the_number_they_dialled() -> None:
    model = CallStateModel(queue_resolver=resolve)
    arrive(model, "1.1", "4001", 10.0)  # AGI() failed: no CTID_QUEUE, straight on to ctid-wait
    out = enter_wait(model, "1.1", 11.0)
    assert kinds(out) == ["QueueAssigned", "CallWaiting"]
    assigned, waiting = out
    assert isinstance(assigned, d.QueueAssigned) and isinstance(waiting, d.CallWaiting)
    assert (assigned.queue, assigned.asked, assigned.channel) == ("support", "", "PJSIP/trunk-00000001")
    assert waiting.queue == "support"
    call = model.calls["1.1"]
    assert (call.state, call.queue, call.dnis) == (CallState.WAITING, "support", "4001")
    # ctid's own Setvar CTID_QUEUE comes back as a VarSet: the same contact, no second arrival
    assert kinds(set_queue(model, "1.1", "ctid-wait", "support", 12.0)) == []


def test_a_number_routing_does_not_list_waits_in_the_default_queue() -> None:
    model = CallStateModel(queue_resolver=resolve)
    arrive(model, "1.2", "9999", 10.0)
    out = enter_wait(model, "1.2", 11.0)
    assert [getattr(e, "queue", None) for e in out] == ["general", "general"]


def test_an_unknown_ctid_queue_goes_to_the_numbers_queue_and_a_known_one_is_kept() -> None:
    model = CallStateModel(queue_resolver=resolve)
    arrive(model, "1.3", "4000", 10.0)
    set_queue(model, "1.3", "ctid-inbound", "old-sales", 10.5)  # an older dialplan's name
    out = enter_wait(model, "1.3", 11.0)
    assigned = out[0]
    assert isinstance(assigned, d.QueueAssigned) and (assigned.queue, assigned.asked) == (
        "sales",
        "old-sales",
    )
    assert model.calls["1.3"].queue == "sales"

    arrive(model, "1.4", "9999", 20.0)
    set_queue(model, "1.4", "ctid-inbound", "support", 20.5)  # the IVR chose: routing keeps it
    out = enter_wait(model, "1.4", 21.0)
    assert kinds(out) == ["CallWaiting"] and model.calls["1.4"].queue == "support"

    arrive(model, "1.5", "4001", 30.0)
    set_queue(model, "1.5", "ctid-inbound", "nowhere", 30.5)
    out = enter_wait(model, "1.5", 31.0)
    assert [getattr(e, "queue", None) for e in out] == ["support", "support"]


def test_an_unknown_queue_set_while_waiting_keeps_the_contact_where_it_waits() -> None:
    model = CallStateModel(queue_resolver=resolve)
    arrive(model, "1.6", "4000", 10.0)
    set_queue(model, "1.6", "ctid-inbound", "sales", 10.5)
    enter_wait(model, "1.6", 11.0)
    out = set_queue(model, "1.6", "ctid-wait", "bogus", 20.0)
    assert kinds(out) == ["CallVariable", "QueueAssigned"]  # no deflection to a phantom queue
    call = model.calls["1.6"]
    assert (call.queue, call.arrived_at, call.state) == ("sales", 11.0, CallState.WAITING)
    # a move to a queue routing knows is still a move: deflected here, a new contact there
    out = set_queue(model, "1.6", "ctid-wait", "support", 30.0)
    assert kinds(out) == ["CallDeflected", "CallVariable", "CallWaiting"]
    assert model.calls["1.6"].queue == "support"


def test_a_dialer_call_keeps_its_campaign_queue_and_one_without_a_queue_is_not_stranded() -> None:
    model = CallStateModel(queue_resolver=resolve)
    for uid, queue in (("1.8", "outbound-c1"), ("1.9", "")):
        model.apply(channel_event("Newchannel", uid, "ctid-outbound", "s"), 10.0)
        model.apply(channel_event("Newexten", uid, "ctid-outbound", "s", Application="AMD"), 10.0)
        if queue:  # the FastAGI outbound step names the dialer's queue, which routing.yaml does not list
            set_queue(model, uid, "ctid-outbound", queue, 10.5)
        enter_wait(model, uid, 11.0)
    assert (model.calls["1.8"].direction, model.calls["1.8"].queue) == (d.Direction.OUTBOUND, "outbound-c1")
    assert model.calls["1.9"].queue == "general"


def test_without_routing_the_placeholder_queue_is_kept_and_nothing_is_assigned() -> None:
    model = CallStateModel()
    arrive(model, "1.7", "4000", 10.0)
    out = enter_wait(model, "1.7", 11.0)
    assert kinds(out) == ["CallWaiting"] and model.calls["1.7"].queue == "default"


def core_show_channel(uid: str, context: str, exten: str, seconds: int) -> ev.CoreShowChannel:
    event = channel_event(
        "CoreShowChannel",
        uid,
        context,
        exten,
        Application="MusicOnHold",
        ApplicationData="default",
        Duration=f"00:00:{seconds:02d}",
        BridgeId="",
        ActionID="x",
    )
    assert isinstance(event, ev.CoreShowChannel)
    return event


def test_a_call_adopted_at_resync_without_variables_waits_in_the_default_queue() -> None:
    """It came while ctid was away: AGI() failed, and the lists do not say which number it dialled."""
    model = CallStateModel(queue_resolver=resolve)
    out = model.resync([core_show_channel("2.1", "ctid-wait", "s", 30)], [], [], now=100.0)
    assert kinds(out) == ["CallArrived", "QueueAssigned", "CallWaiting"]
    call = model.calls["2.1"]
    assert (call.state, call.queue) == (CallState.WAITING, "general")


def test_a_call_adopted_at_resync_with_its_ctid_queue_keeps_it() -> None:
    model = CallStateModel(queue_resolver=resolve)
    status = channel_event("Status", "2.2", "ctid-wait", "s", Variable="CTID_QUEUE=support", ActionID="x")
    assert isinstance(status, ev.ChannelStatus)
    out = model.resync([core_show_channel("2.2", "ctid-wait", "s", 30)], [status], [], now=100.0)
    assert "QueueAssigned" not in kinds(out) and model.calls["2.2"].queue == "support"


def test_reaping_ends_idle_channels_asterisk_no_longer_lists_and_keeps_the_others() -> None:
    model = CallStateModel(queue_resolver=resolve)
    for uid, at in (("3.1", 0.0), ("3.2", 0.0), ("3.3", 3000.0)):
        arrive(model, uid, "4000", at)
        enter_wait(model, uid, at + 1)
    assert model.idle_channels(3700.0, 3600.0) == ["3.1", "3.2"]  # 3.3 had an event an hour ago at most
    # Asterisk lists 3.2 (a caller on hold music, legitimately silent) but not 3.1, whose Hangup was lost;
    # 3.3 is not listed either (the list raced it), but it is not idle, so it stays
    out = model.reap({"3.2"}, 3700.0, 3600.0)
    assert kinds(out) == ["CallEnded"]
    ended = out[0]
    assert isinstance(ended, d.CallEnded) and (ended.linkedid, ended.disposition) == ("3.1", "lost")
    assert set(model.calls) == {"3.2", "3.3"} and set(model.channels) == {"3.2", "3.3"}
    assert model.ended[-1].timeline[-2]["kind"] == "channel_reaped"
    # the listed channel counts as seen: it is not asked about again until it has been silent once more
    assert model.idle_channels(3800.0, 3600.0) == []
    assert model.reap(set(), 3800.0, 3600.0) == []


def test_an_event_keeps_a_channel_from_being_idle() -> None:
    model = CallStateModel(queue_resolver=resolve)
    arrive(model, "4.1", "4000", 0.0)
    enter_wait(model, "4.1", 1.0)
    model.apply(channel_event("Newstate", "4.1", "ctid-wait", "s"), 3000.0)
    assert model.idle_channels(3700.0, 3600.0) == []
