"""ctid's Hold, Unhold and PlayMessage on a real Asterisk running the shipped ctid-hold and ctid-message."""

from __future__ import annotations

import pytest

from ctid import dialplan
from ctid.commands import Command, Hold, PlayMessage, Unhold, ami_actions
from tests.asterisk.amiclient import event
from tests.asterisk.harness import Pbx

pytestmark = pytest.mark.asterisk


async def send(pbx: Pbx, command: Command) -> None:
    for name, headers in ami_actions(command):
        await pbx.ami.action(name, **headers)


async def test_hold_unhold_and_a_message_move_a_waiting_caller_through_the_contract(pbx: Pbx) -> None:
    caller = await pbx.inbound_call("13900000021", "Held")
    mark = pbx.ami.mark()
    await send(pbx, Hold(caller.channel, moh_class="default"))
    held = await pbx.ami.wait_for(
        event("Newexten", Uniqueid=caller.uniqueid, Context=dialplan.HOLD), after=mark
    )
    assert held["Application"] == "MusicOnHold"
    music = await pbx.ami.wait_for(event("MusicOnHoldStart", Uniqueid=caller.uniqueid), after=mark)
    assert music["Class"] == "default"

    mark = pbx.ami.mark()
    await send(pbx, Unhold(caller.channel, context=dialplan.WAIT))
    await pbx.ami.wait_for(
        event("Newexten", Uniqueid=caller.uniqueid, Context=dialplan.WAIT, Application="MusicOnHold"),
        after=mark,
    )

    mark = pbx.ami.mark()
    await send(pbx, PlayMessage(caller.channel, "one-moment-please"))
    played = await pbx.ami.wait_for(
        event("Newexten", Uniqueid=caller.uniqueid, Context=dialplan.MESSAGE), after=mark
    )
    assert (played["Application"], played["AppData"]) == ("Playback", "one-moment-please")
    await pbx.ami.wait_for(
        event("Newexten", Uniqueid=caller.uniqueid, Context=dialplan.WAIT, Application="MusicOnHold"),
        after=mark,
    )
    await pbx.hangup(caller.channel)
    await pbx.wait_gone(caller.uniqueid)
