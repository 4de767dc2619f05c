"""The agent desktop on a real Asterisk: ctid routes a known customer's call to an agent whose SIP phone (a
pyVoIP user agent registered as PJSIP/1001) rings; the agent's desktop socket gets the pop while the phone
still rings; answering puts the agent on the call; a note written during it is in the next call's pop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pyVoIP.VoIP import CallState
from sqlalchemy.orm import Session

from ctid.customers.book import Customer, import_csv_text
from ctid.db import make_engine
from tests.asterisk.harness import (
    DESK_AGENT,
    DESK_DNIS,
    AsteriskInstance,
    CtidHttp,
    CtidProcess,
    Pbx,
    SipPhone,
    poll,
)

pytestmark = pytest.mark.asterisk

PHONE = "PJSIP/1001"  # DESK_AGENT's device in routing.yaml, and the endpoint the phone registers as
CUSTOMER, NAME, NUMBER = "zhou", "周杰 Trading", "13900000077"
CUSTOMERS = f"""\
id,name,phones,revenue_12m,tenure_years,cost_to_serve,lifecycle,vip
{CUSTOMER},{NAME},{NUMBER},50000,3,100,repeat,false
"""
NOTE = "Wants the yearly price for the fibre line; call back after the 15th"
BUSY = ("reserved", "ringing", "on_call_inbound", "on_call_outbound", "on_hold")


@pytest.fixture(scope="module")
def customer(ctid: CtidProcess) -> None:
    """The customer in ctid's own database, as an admin's CSV import would leave them."""
    engine = make_engine(f"sqlite:///{Path(ctid.config_path).parent / 'ctid.db'}")
    with Session(engine) as session:
        if session.get(Customer, CUSTOMER) is None:
            assert not import_csv_text(session, CUSTOMERS).rejected
        session.commit()
    engine.dispose()


@dataclass
class Desktop:
    """The agent's desktop socket (/ws/agent) as the page reads it: every message in order."""

    ws: aiohttp.ClientWebSocketResponse
    received: list[dict[str, Any]] = field(default_factory=list)

    async def read(self) -> None:
        async for message in self.ws:
            self.received.append(json.loads(message.data))

    async def wait(self, done: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """The first message so far, or to come, for which `done` holds."""

        async def probe() -> dict[str, Any] | None:
            return next((m for m in self.received if done(m)), None)

        found = await poll(probe, lambda m: m is not None, what=what, timeout=10)
        assert found is not None
        return found


@dataclass
class Agent:
    """DESK_AGENT at work: logged in over HTTP, the desktop socket open, the SIP phone registered."""

    http: aiohttp.ClientSession
    base_url: str
    desktop: Desktop
    phone: SipPhone

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        async with self.http.post(self.base_url + path, json=body) as response:
            return response.status, await response.json()

    async def get(self, path: str) -> Any:
        async with self.http.get(self.base_url + path) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def status_of(http: CtidHttp, agent: str) -> dict[str, Any]:
    return next(a for a in await http.agents() if a["id"] == agent)


@pytest.fixture
async def agent(
    pbx: Pbx, http: CtidHttp, ctid: CtidProcess, asterisk: AsteriskInstance, customer: None
) -> AsyncIterator[Agent]:
    """Afterwards the agent is logged out, the phone unregistered and the socket closed."""
    phone = SipPhone(asterisk, PHONE.removeprefix("PJSIP/"))
    await phone.register()
    async with aiohttp.ClientSession(
        headers=ctid.agent_login, timeout=aiohttp.ClientTimeout(total=5)
    ) as session:
        desktop = Desktop(await session.ws_connect(f"{ctid.base_url}/ws/agent"))
        reader = asyncio.get_running_loop().create_task(desktop.read())
        try:
            yield Agent(session, ctid.base_url, desktop, phone)
        finally:
            if asterisk.channels():
                asterisk.cli("channel request hangup all")
            await poll(
                lambda: status_of(http, DESK_AGENT), lambda a: a["status"] not in BUSY, what="the agent free"
            )
            async with session.post(
                f"{ctid.base_url}/api/agents/{DESK_AGENT}/state", json={"state": "logged_out", "reason": ""}
            ) as response:
                assert response.status == 200, await response.text()
            await desktop.ws.close()
            await reader
            await phone.stop()


def of_call(linkedid: str, *kinds: str) -> Callable[[dict[str, Any]], bool]:
    """A pop message of the call `linkedid`, of one of `kinds`."""

    def match(message: dict[str, Any]) -> bool:
        pop = message.get("pop") or {}
        return message["kind"] in kinds and linkedid in (pop.get("linkedid"), message.get("linkedid"))

    return match


def loaded(linkedid: str) -> Callable[[dict[str, Any]], bool]:
    """The call's pop once it shows the customer's data."""
    opened = of_call(linkedid, "PopOpened", "PopUpdated")
    return lambda m: opened(m) and m["pop"]["data"] is not None


async def test_the_pop_reaches_the_desktop_while_the_sip_phone_rings_and_a_note_reaches_the_next_pop(
    agent: Agent, pbx: Pbx, http: CtidHttp
) -> None:
    snapshot = await agent.desktop.wait(lambda m: m["kind"] == "AgentState", "the agent's state")
    assert (snapshot["id"], snapshot["device"]) == (DESK_AGENT, PHONE)
    status, body = await agent.post(f"/api/agents/{DESK_AGENT}/state", {"state": "ready", "reason": ""})
    assert status == 200, body

    first = await pbx.inbound_call(NUMBER, NAME, exten=DESK_DNIS)
    ring = await agent.phone.ringing()
    opened = await agent.desktop.wait(of_call(first.linkedid, "PopOpened"), "the first call's pop")
    shown = (await agent.desktop.wait(loaded(first.linkedid), "the first pop's customer data"))["pop"]
    assert ring.state is CallState.RINGING, "the pop came while the phone still rang, before the answer"
    ringing = await http.wait_call(first.linkedid, lambda c: c["state"] == "ringing", "ringing the phone")
    assert ringing["agent"] == PHONE
    pop = opened["pop"]
    assert (pop["caller_num"], pop["caller_name"], pop["customer"], pop["queue"]) == (
        NUMBER,
        NAME,
        CUSTOMER,
        "desk",
    )
    assert not pop["answered"] and not pop["ended"]
    assert (shown["data"]["customer"]["name"], shown["data"]["found_by"]) == (NAME, "customer-id")

    await asyncio.to_thread(ring.answer)
    changed = await agent.desktop.wait(
        lambda m: m["kind"] == "AgentStateChanged" and m["state"] == "on_call_inbound", "the agent on call"
    )
    assert (changed["agent"], changed["linkedid"]) == (DESK_AGENT, first.linkedid)
    connected = await http.wait_call(first.linkedid, lambda c: c["state"] == "connected", "connected")
    assert connected["agent"] == PHONE
    seen = await status_of(http, DESK_AGENT)
    assert (seen["status"], seen["call"]) == ("on_call_inbound", first.linkedid)
    await agent.desktop.wait(
        lambda m: of_call(first.linkedid, "PopUpdated")(m) and m["pop"]["answered"], "the pop answered"
    )

    status, written = await agent.post(
        f"/api/customers/{CUSTOMER}/notes", {"text": NOTE, "call": first.linkedid}
    )
    assert status == 201, written
    await asyncio.to_thread(ring.hangup)  # the agent hangs up on the phone
    ended = await http.wait_ended(first.linkedid)
    assert (ended["disposition"], ended["ended_by"]) == ("answered", "agent")
    await agent.desktop.wait(of_call(first.linkedid, "PopEnded"), "the first pop ended")
    await poll(  # the call's row in the customer's history: ctid writes it off its loop once the call ends
        lambda: agent.get(f"/api/customers/{CUSTOMER}"),
        lambda h: any(c["linkedid"] == first.linkedid for c in h["calls"]),
        what="the first call in the customer's history",
    )
    await poll(lambda: status_of(http, DESK_AGENT), lambda a: a["status"] == "ready", what="the agent ready")

    second = await pbx.inbound_call(NUMBER, NAME, exten=DESK_DNIS)
    ring = await agent.phone.ringing()
    shown = (await agent.desktop.wait(loaded(second.linkedid), "the second pop's customer data"))["pop"]
    assert ring.state is CallState.RINGING
    past = {c["linkedid"]: c for c in shown["data"]["customer"]["calls"]}
    assert past[first.linkedid]["agent"] == DESK_AGENT
    (note,) = past[first.linkedid]["notes"]
    assert (note["text"], note["agent"], note["call"]) == (NOTE, DESK_AGENT, first.linkedid)
    await asyncio.to_thread(ring.answer)
    await http.wait_call(second.linkedid, lambda c: c["state"] == "connected", "the second call connected")
    await asyncio.to_thread(ring.hangup)
    await http.wait_ended(second.linkedid)
