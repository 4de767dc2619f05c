"""ctid.commands: each command as the AMI actions, in order, that carry it out (the dialplan contract)."""

from __future__ import annotations

import pytest

from ctid.commands import (
    Command,
    Hangup,
    Hold,
    MoveToQueue,
    OfferCall,
    Originate,
    PlayMessage,
    Redirect,
    SendTo,
    SetVariable,
    Unhold,
    ami_actions,
    new_uniqueid,
)

CALLER = "PJSIP/trunk-00000001"


def test_an_offer_sets_the_agent_and_ring_timeout_then_redirects_to_ctid_connect() -> None:
    offer = OfferCall("1700000000.1", CALLER, "alice", "PJSIP/1001", 12.5, "sales")
    assert ami_actions(offer) == [
        ("Setvar", {"Channel": CALLER, "Variable": "CTID_AGENT_DIAL", "Value": "PJSIP/1001"}),
        ("Setvar", {"Channel": CALLER, "Variable": "CTID_RING_TIMEOUT", "Value": "12.5"}),
        ("Redirect", {"Channel": CALLER, "Context": "ctid-connect", "Exten": "s", "Priority": "1"}),
    ]


def test_send_to_and_move_to_queue_say_why_first() -> None:
    assert ami_actions(SendTo("l", CALLER, "sales", "voicemail", "closed")) == [
        ("Setvar", {"Channel": CALLER, "Variable": "CTID_SENT_TO", "Value": "voicemail:closed"}),
        ("Redirect", {"Channel": CALLER, "Context": "ctid-voicemail", "Exten": "s", "Priority": "1"}),
    ]
    assert ami_actions(SendTo("l", CALLER, "sales", "hangup", "max_wait"))[1] == (
        "Hangup",
        {"Channel": CALLER, "Cause": "16"},
    )
    assert ami_actions(MoveToQueue("l", CALLER, "billing", "overflow")) == [
        ("Setvar", {"Channel": CALLER, "Variable": "CTID_SENT_TO", "Value": "queue:overflow"}),
        ("Setvar", {"Channel": CALLER, "Variable": "CTID_QUEUE", "Value": "billing"}),
    ]


def test_set_variable_redirect_and_hangup_are_one_action_each() -> None:
    assert ami_actions(SetVariable(CALLER, "CTID_QUEUE", "sales")) == [
        ("Setvar", {"Channel": CALLER, "Variable": "CTID_QUEUE", "Value": "sales"})
    ]
    assert ami_actions(Redirect(CALLER, "ctid-callback", "s", 2)) == [
        ("Redirect", {"Channel": CALLER, "Context": "ctid-callback", "Exten": "s", "Priority": "2"})
    ]
    assert ami_actions(Hangup(CALLER, cause=21)) == [("Hangup", {"Channel": CALLER, "Cause": "21"})]


def test_originate_carries_the_ids_ctid_chose_and_runs_asynchronously() -> None:
    one, two = new_uniqueid(), new_uniqueid()
    assert one != two and len(one) < 149  # Asterisk's limit on a public uniqueid
    command = Originate(
        "Local/0612345678@ctid-dial",
        "ctid-outbound",
        "s",
        one,
        other_uniqueid=two,
        timeout_s=25,
        caller_id='"Shop" <0800123>',
        variables=(("CTID_CAMPAIGN", "spring"), ("CTID_CUSTOMER", "42")),
    )
    assert command.linkedid == one
    assert ami_actions(command) == [
        (
            "Originate",
            {
                "Channel": "Local/0612345678@ctid-dial",
                "Context": "ctid-outbound",
                "Exten": "s",
                "Priority": "1",
                "Timeout": "25000",
                "Async": "true",
                "ChannelId": one,
                "OtherChannelId": two,
                "CallerID": '"Shop" <0800123>',
                "Variable": "CTID_CAMPAIGN=spring,CTID_CUSTOMER=42",
            },
        )
    ]
    bare = ami_actions(Originate("PJSIP/1001", "ctid-wait", "s", one))[0][1]
    assert "OtherChannelId" not in bare and "CallerID" not in bare and "Variable" not in bare


def test_hold_unhold_and_play_message_go_through_the_contract_contexts() -> None:
    assert ami_actions(Hold(CALLER)) == [
        ("Redirect", {"Channel": CALLER, "Context": "ctid-hold", "Exten": "s", "Priority": "1"})
    ]
    assert ami_actions(Hold(CALLER, moh_class="jazz"))[0] == (
        "Setvar",
        {"Channel": CALLER, "Variable": "CTID_MOH", "Value": "jazz"},
    )
    assert ami_actions(Unhold(CALLER)) == [
        ("Redirect", {"Channel": CALLER, "Context": "ctid-connect", "Exten": "s", "Priority": "1"})
    ]
    assert ami_actions(PlayMessage(CALLER, "ctid-closed-today")) == [
        ("Setvar", {"Channel": CALLER, "Variable": "CTID_MESSAGE", "Value": "ctid-closed-today"}),
        ("Redirect", {"Channel": CALLER, "Context": "ctid-message", "Exten": "s", "Priority": "1"}),
    ]


def test_a_command_without_an_ami_form_is_refused() -> None:
    class Unknown(Command):
        pass

    with pytest.raises(TypeError, match="no AMI form for Unknown"):
        ami_actions(Unknown())
    assert OfferCall("l", CALLER, "a", "PJSIP/1", 1.0, "q").kind == "OfferCall"
