"""ctid's Hold, Unhold and PlayMessage commands, as AMI actions, on pbxsim's ctid-hold and ctid-message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ctid import dialplan
from ctid.commands import Command, Hold, PlayMessage, Unhold, ami_actions
from pbxsim import PbxSimServer, World
from tests.pbxsim.driver import AgiPeer, AmiTestClient, event
from tests.pbxsim.test_server import logged_in, waiting_caller


@pytest.fixture
async def client() -> AsyncIterator[AmiTestClient]:
    agi = AgiPeer({"inbound": ['SET VARIABLE CTID_QUEUE "sales"']})
    await agi.start()
    server = PbxSimServer(World(seed=1), port=0, agi_port=agi.port)
    await server.start()
    yield await logged_in(server)
    await server.stop()
    await agi.stop()


async def send(client: AmiTestClient, command: Command) -> None:
    for name, headers in ami_actions(command):
        reply = await client.action(name, **headers)
        assert reply["Response"] == "Success", reply


async def test_hold_plays_ctid_moh_until_unhold_moves_the_caller_on(client: AmiTestClient) -> None:
    caller = await waiting_caller(client)
    mark = client.mark()
    await send(client, Hold(caller, moh_class="jazz"))
    held = await client.wait(event("Newexten", Channel=caller, Context=dialplan.HOLD), after=mark)
    assert held["Application"] == "MusicOnHold"
    music = await client.wait(event("MusicOnHoldStart", Channel=caller), after=mark)
    assert music["Class"] == "jazz"

    mark = client.mark()
    await send(client, Unhold(caller, context=dialplan.WAIT))
    await client.wait(event("MusicOnHoldStop", Channel=caller), after=mark)
    back = await client.wait(event("Newexten", Channel=caller, Context=dialplan.WAIT), after=mark)
    assert back["Application"] == "MusicOnHold"


async def test_hold_without_a_class_plays_the_default_music(client: AmiTestClient) -> None:
    caller = await waiting_caller(client)
    mark = client.mark()
    await send(client, Hold(caller))
    music = await client.wait(event("MusicOnHoldStart", Channel=caller), after=mark)
    assert music["Class"] == "default"


async def test_play_message_plays_ctid_message_then_the_caller_waits_again(client: AmiTestClient) -> None:
    caller = await waiting_caller(client)
    mark = client.mark()
    await send(client, PlayMessage(caller, "one-moment-please"))
    played = await client.wait(event("Newexten", Channel=caller, Context=dialplan.MESSAGE), after=mark)
    assert (played["Application"], played["AppData"]) == ("Playback", "one-moment-please")
    started = client.server.world.now
    back = await client.wait(event("Newexten", Channel=caller, Context=dialplan.WAIT), after=mark)
    assert back["Application"] == "MusicOnHold"
    assert client.server.world.now - started == pytest.approx(1.6)  # the prompt's length, in virtual time
    assert not [m for m in client.messages[mark:] if m.name == "Hangup"]
