"""A caller whose AGI() step fails on a real Asterisk is not stranded: ctid puts them in their number's queue.

Setting the global CTID_HOST to a loopback address where nothing listens makes the contract dialplan's
AGI() fail as it does when ctid is down or its FastAGI port is unreachable; the dialplan goes on to
ctid-wait without CTID_QUEUE.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.asterisk.amiclient import event
from tests.asterisk.harness import AsteriskInstance, CtidHttp, Pbx, poll

pytestmark = pytest.mark.asterisk

ALICE = "Local/1011@sim-phones"


async def set_state(http: CtidHttp, agent: str, state: str) -> None:
    async with http.session.post(f"{http.base_url}/api/agents/{agent}/state", json={"state": state}) as resp:
        assert resp.status == 200, await resp.text()


async def waiting(http: CtidHttp) -> dict[str, list[str]]:
    queues = await http.get_ok("/api/queues")
    return {q["queue"]: [w["linkedid"] for w in q["waiting"]] for q in queues if q["waiting"]}


@pytest.fixture
async def unreachable_agi(pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance) -> AsyncIterator[Pbx]:
    await pbx.ami.action("Setvar", Variable="CTID_HOST", Value="127.0.0.2")  # a global: nothing listens there
    try:
        yield pbx
    finally:
        await pbx.ami.action("Setvar", Variable="CTID_HOST", Value="127.0.0.1")
        if asterisk.channels():
            asterisk.cli("channel request hangup all")
        await poll(lambda: agent_status(http), lambda s: s != "on_call_inbound", what="alice off her call")
        if await agent_status(http) != "logged_out":
            await set_state(http, "alice", "logged_out")


async def agent_status(http: CtidHttp) -> str:
    return str(next(a["status"] for a in await http.get_ok("/api/agents") if a.get("id") == "alice"))


async def test_a_caller_whose_agi_step_fails_waits_in_their_numbers_queue_and_is_routed(
    unreachable_agi: Pbx, http: CtidHttp
) -> None:
    pbx = unreachable_agi
    mark = pbx.ami.mark()
    caller = await pbx.inbound_call("13900000003", "Plain", exten="4100")  # 4100 is sales in routing.yaml
    failed = await pbx.ami.wait_for(
        event("VarSet", Variable="AGISTATUS", Linkedid=caller.linkedid), after=mark
    )
    assert failed["Value"] == "FAILURE"
    # ctid chose sales from the dialled number and told Asterisk, so its records say where the call waited
    await pbx.ami.wait_for(
        event("VarSet", Variable="CTID_QUEUE", Value="sales", Linkedid=caller.linkedid), after=mark
    )
    await poll(
        lambda: waiting(http), lambda seen: seen == {"sales": [caller.linkedid]}, what="caller in sales"
    )
    await set_state(http, "alice", "ready")
    connected = await http.wait_call(caller.linkedid, lambda c: c["state"] == "connected", "connected")
    assert (connected["agent"], connected["queue"]) == (ALICE, "sales")
