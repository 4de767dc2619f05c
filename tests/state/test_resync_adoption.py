"""A resync takes up calls already under way as the same calls, and ends those gone out of sight as lost.

Asterisk's lists are built by hand: a caller waiting in sales, a caller talking to PJSIP/1001, and a caller
who arrived while ctid was away. Times are on Asterisk's clock: ctid last saw the server at 900, the resync
runs at 1000.
"""

from __future__ import annotations

from typing import Any

from ctid.ami import events as ev
from ctid.ami.message import AmiMessage
from ctid.state import CallState, CallStateModel
from ctid.state import domain as d

GONE, NOW = 900.0, 1000.0


def listed(channel: str, uid: str, linkedid: str, context: str, bridge: str = "", age_s: int = 60) -> Any:
    event = ev.decode_event(
        AmiMessage(
            [
                ("Event", "CoreShowChannel"),
                ("Channel", channel),
                ("ChannelState", "6"),
                ("CallerIDNum", "13800001111"),
                ("CallerIDName", "Ann"),
                ("Context", context),
                ("Exten", "s"),
                ("Priority", "1"),
                ("Uniqueid", uid),
                ("Linkedid", linkedid),
                ("Application", "MusicOnHold" if context == "ctid-wait" else "Dial"),
                ("BridgeId", bridge),
                ("Duration", f"00:{age_s // 60:02d}:{age_s % 60:02d}"),
                ("ActionID", "resync"),
            ]
        )
    )
    assert isinstance(event, ev.CoreShowChannel)
    return event


WAITING = listed("PJSIP/trunk-00000001", "w.1", "w.1", "ctid-wait", age_s=600)
TALKING = [
    listed("PJSIP/trunk-00000002", "t.1", "t.1", "ctid-connect", bridge="b1", age_s=600),
    listed("PJSIP/1001-00000003", "t.2", "t.1", "sim-phones", bridge="b1", age_s=300),
]
NEW = listed("PJSIP/trunk-00000004", "n.1", "n.1", "ctid-wait", age_s=20)  # arrived while ctid was away


def of(events: list[d.DomainEvent], kind: type[d.DomainEvent], linkedid: str) -> list[Any]:
    return [e for e in events if isinstance(e, kind) and e.linkedid == linkedid]


def test_after_a_restart_the_calls_the_log_holds_open_are_taken_up_as_the_same_contacts() -> None:
    model = CallStateModel()  # a new process: the model starts empty, the log says what was open
    model.expect(
        [
            d.OpenCall("w.1", queued=True, arrived_at=500.0, queue="sales"),  # waiting since 500
            d.OpenCall("t.1", queued=True, arrived_at=None),  # answered before the restart
            d.OpenCall("g.1", queued=True, arrived_at=600.0, queue="sales"),  # hung up while ctid was away
        ]
    )
    events = model.resync([WAITING, *TALKING, NEW], [], [], NOW, gone_at=GONE)

    assert all(e.adopted for e in events if isinstance(e, d.CallArrived | d.CallWaiting | d.CallConnected))
    [waiting] = of(events, d.CallWaiting, "w.1")
    assert (waiting.arrived_at, waiting.requeued) == (500.0, False)  # the stay keeps its arrive
    assert model.calls["w.1"].state is CallState.WAITING
    assert of(events, d.CallWaiting, "t.1") == []  # answered already: no second stay
    [connected] = of(events, d.CallConnected, "t.1")
    assert connected.agent == "PJSIP/1001"
    [new] = of(events, d.CallWaiting, "n.1")
    assert new.arrived_at == NOW - 20  # arrived out of sight: at the call's start, the earliest it could
    [lost] = of(events, d.CallEnded, "g.1")
    assert (lost.at, lost.disposition) == (GONE, "lost")  # ended as of the last moment ctid saw it
    assert of(events, d.CallAbandoned, "g.1") == []  # nobody knows it abandoned: no figure is invented
    assert of(events, d.CallEnded, "w.1") == of(events, d.CallEnded, "t.1") == []


def test_after_a_reconnect_calls_that_vanished_end_as_of_the_gap_start_and_new_stays_start_there() -> None:
    model = CallStateModel()
    ivr = listed("PJSIP/trunk-00000005", "i.1", "i.1", "ctid-inbound", age_s=5)
    model.resync([WAITING, *TALKING, ivr], [], [], 100.0)
    ivr_in_queue = listed("PJSIP/trunk-00000005", "i.1", "i.1", "ctid-wait", age_s=205)
    events = model.resync([*TALKING, ivr_in_queue], [], [], 300.0, gone_at=250.0)

    [lost] = of(events, d.CallEnded, "w.1")
    assert (lost.at, lost.disposition) == (250.0, "lost")
    assert of(events, d.CallAbandoned, "w.1") == []
    assert of(events, d.CallArrived, "t.1") == of(events, d.CallConnected, "t.1") == []  # nothing new
    [queued] = of(events, d.CallWaiting, "i.1")  # it left the IVR for a queue while ctid was away
    assert (queued.arrived_at, queued.adopted) == (250.0, True)


def test_a_stay_found_in_a_queue_counts_from_the_gap_and_what_follows_is_live() -> None:
    model = CallStateModel()
    model.resync([WAITING], [], [], NOW, gone_at=GONE)
    hangup = ev.decode_event(
        AmiMessage(
            [
                ("Event", "Hangup"),
                ("Channel", "PJSIP/trunk-00000001"),
                ("ChannelState", "6"),
                ("Context", "ctid-wait"),
                ("Exten", "s"),
                ("Priority", "1"),
                ("Uniqueid", "w.1"),
                ("Linkedid", "w.1"),
                ("Cause", "16"),
            ]
        )
    )
    events = model.apply(hangup, NOW + 30)
    [abandoned] = of(events, d.CallAbandoned, "w.1")
    assert abandoned.wait_s == NOW + 30 - GONE  # its stay began out of sight: counted from the gap's start
