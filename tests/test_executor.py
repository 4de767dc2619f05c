"""ctid.executor over TCP against pbxsim: typed results with Asterisk's message; Originate correlation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from ctid.ami import events as ev
from ctid.ami.client import AmiConnection
from ctid.commands import MoveToQueue, Originate, Redirect, SetVariable, new_uniqueid
from ctid.executor import CommandExecutor, CommandFailed, CommandSucceeded
from ctid.metrics import COMMAND_RESULTS
from pbxsim import PbxSimServer, World, call_center_site


@dataclass
class Site:
    server: PbxSimServer
    connection: AmiConnection
    executor: CommandExecutor
    events: list[ev.AmiEvent] = field(default_factory=list)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    world = World(seed=3, endpoints=call_center_site(["1001"]))
    server = PbxSimServer(world, host="127.0.0.1", port=0, agi_port=1)  # virtual time moves when told
    await server.start()
    connections: dict[str, AmiConnection] = {}
    executor = CommandExecutor(lambda name: connections[name])
    events: list[ev.AmiEvent] = []

    def on_event(event: ev.AmiEvent) -> None:
        events.append(event)
        executor.on_ami_event("pbx1", event)

    connection = AmiConnection(
        name="pbx1",
        host="127.0.0.1",
        port=server.port,
        username="ctid",
        secret="ctid",
        action_timeout=2.0,
        reconnect_min=0.05,
        reconnect_max=0.2,
        on_event=on_event,
    )
    connections["pbx1"] = connection
    connection.start()
    await asyncio.wait_for(connection.synced.wait(), 5)
    yield Site(server, connection, executor, events)
    await connection.close()
    await server.stop()


def count(command: str, outcome: str) -> float:
    return COMMAND_RESULTS.labels(command, outcome)._value.get()


async def test_a_refused_action_comes_back_as_a_typed_failure_with_asterisks_message(site: Site) -> None:
    before = count("Redirect", "refused")
    result = await site.executor.execute("pbx1", Redirect("PJSIP/nobody-00000000", "ctid-wait"))
    assert isinstance(result, CommandFailed) and not result.ok
    assert result.action == "Redirect" and result.reason == "refused" and result.server == "pbx1"
    assert result.message == "Channel does not exist: PJSIP/nobody-00000000"
    assert result.response["Response"] == "Error"
    assert count("Redirect", "refused") == before + 1


async def test_a_lost_link_or_an_unknown_server_is_a_failure_with_its_reason_not_an_exception(
    site: Site,
) -> None:
    unknown = await site.executor.execute("pbx9", SetVariable("PJSIP/1001-00000000", "X", "1"))
    assert isinstance(unknown, CommandFailed) and unknown.reason == "not_connected"
    await site.connection.close()
    lost = await site.executor.execute("pbx1", SetVariable("PJSIP/1001-00000000", "X", "1"))
    assert isinstance(lost, CommandFailed) and lost.reason == "not_connected" and lost.action == "Setvar"


async def test_originate_is_known_by_the_uniqueid_ctid_chose_before_asterisk_answers(site: Site) -> None:
    uniqueid = new_uniqueid()
    command = Originate("PJSIP/1001", "ctid-wait", "s", uniqueid, timeout_s=20)
    result = await site.executor.execute("pbx1", command)
    assert isinstance(result, CommandSucceeded) and result.uniqueid == uniqueid and result.action_id
    assert command.linkedid == uniqueid
    waiting = asyncio.create_task(site.executor.originate_response(result, timeout=5))
    await site.server.advance(3)  # the phone answers after 2 s
    response = await waiting
    assert response is not None and response.success and response.uniqueid == uniqueid
    assert response.action_id == result.action_id
    created = [e for e in site.events if isinstance(e, ev.Newchannel) and e.chan.uniqueid == uniqueid]
    assert [e.chan.linkedid for e in created] == [uniqueid]  # the call's linkedid is ctid's id too

    # a command of several actions on the originated channel: all of them, in order
    moved = await site.executor.execute("pbx1", MoveToQueue(uniqueid, response.channel, "billing", "closed"))
    assert isinstance(moved, CommandSucceeded)
    queue = await site.connection.action("Getvar", Channel=response.channel, Variable="CTID_QUEUE")
    sent_to = await site.connection.action("Getvar", Channel=response.channel, Variable="CTID_SENT_TO")
    assert (queue.get("Value"), sent_to.get("Value")) == ("billing", "queue:closed")


async def test_a_failed_originate_is_matched_to_its_command_by_action_id(site: Site) -> None:
    # Asterisk queues it, then says Failure with Uniqueid <unknown>: only the ActionID ties them
    result = await site.executor.execute("pbx1", Originate("PJSIP/9999", "ctid-wait", "s", new_uniqueid()))
    assert isinstance(result, CommandSucceeded)
    waiting = asyncio.create_task(site.executor.originate_response(result, timeout=5))
    await site.server.advance(1)
    response = await waiting
    assert response is not None and not response.success and response.action_id == result.action_id


async def test_an_originate_whose_response_never_comes_gives_none_after_its_timeout(site: Site) -> None:
    result = await site.executor.execute("pbx1", Originate("PJSIP/1001", "ctid-wait", "s", new_uniqueid()))
    assert isinstance(result, CommandSucceeded)
    assert await site.executor.originate_response(result, timeout=0.05) is None  # virtual time stood still
    site.executor.forget_server("pbx1")  # the link is lost: the waiter goes
    assert await site.executor.originate_response(result, timeout=1) is None
