"""The desktop against a whole ctid and pbxsim: a ring pops on the ringing agent's socket before the answer,
with the customer's open complaint, and nowhere else; a reconnect gets it back; hang-up ends it."""

from __future__ import annotations

from typing import Any

import aiohttp

from ctid.auth import Role
from ctid.state import domain as d
from tests.auth_rig import bearer
from tests.daemon_rig import until
from tests.routing.test_service_pbxsim import AGENTS, make_site  # noqa: F401  (fixture)
from tests.screenpop.rig import COMPLAINT, STEPS, Desktop, open_complaint


async def test_the_ringing_agent_gets_the_pop_before_answer_and_nobody_else(make_site: Any) -> None:  # noqa: F811
    site = await make_site()
    engine = site.ctid.context.engine
    open_complaint(engine)
    connected: list[d.CallConnected] = []
    site.ctid.bus.subscribe(lambda origin, e: connected.append(e) if isinstance(e, d.CallConnected) else None)
    site.answer[AGENTS["alice"]] = 3.0  # alice's phone rings 3 s before she answers
    alice_login = bearer(engine, "alice-login", Role.AGENT, "alice")
    bob_login = bearer(engine, "bob-login", Role.AGENT, "bob")
    async with (
        aiohttp.ClientSession(headers=alice_login) as alice_http,
        aiohttp.ClientSession(headers=bob_login) as bob_http,
    ):
        alice = Desktop(await alice_http.ws_connect(f"{site.base}/ws/agent"), site.world).start()
        bob = Desktop(await bob_http.ws_connect(f"{site.base}/ws/agent"), site.world).start()
        await until(lambda: alice.kinds() == ["AgentState"] and bob.kinds() == ["AgentState"], "snapshots")
        assert alice.received[0][1]["id"] == "alice" and bob.received[0][1]["id"] == "bob"
        assert await site.set_state("alice", "ready") == 200
        await site.run(1)
        caller = await site.call("4000", "13900000001")
        await site.run(6)
        assert await site.agent_of(caller) == "PJSIP/1001"

        (first_at, first), *_ = alice.pops()
        assert first["kind"] == "PopOpened" and first["pop"]["caller_num"] == "13900000001"
        (call,) = connected
        assert first_at < call.at  # popped while ringing, before the answer
        assert first["pop"]["linkedid"] == call.linkedid and not first["pop"]["answered"]
        shown = alice.shown()
        assert shown is not None and shown["answered"] and shown["customer"] == "gold"
        customer = shown["data"]["customer"]
        assert (customer["name"], customer["tier"], customer["lifecycle"]) == ("Gold Ltd", "A", "client")
        (case,) = shown["data"]["open_cases"]
        assert case["subject"] == COMPLAINT
        assert [(s["who"], s["done"], s["next_step"]) for s in case["steps"]] == list(STEPS)
        assert [k for k in bob.kinds() if k.startswith("Pop")] == []  # never bob's

        # a reconnecting desktop gets the current pop back, with the agent's state
        again = Desktop(await alice_http.ws_connect(f"{site.base}/ws/agent"), site.world).start()
        await until(lambda: len(again.received) >= 2, "the reconnect's snapshots")
        assert sorted(again.kinds()) == ["AgentState", "PopOpened"]
        assert again.shown() == shown
        await again.ws.close()

        # the transfer note is the agent's own call's: bob cannot write on it
        note_url = f"{site.base}/api/pops/{call.linkedid}/transfer-note"
        async with bob_http.post(note_url, json={"text": "from bob"}) as resp:
            assert resp.status == 404
        async with alice_http.post(note_url, json={"text": "wants the yearly price"}) as resp:
            assert resp.status == 200
        async with alice_http.post(note_url, json={"text": 7}) as resp:
            assert resp.status == 400
        async with alice_http.get(f"{site.base}/api/desktop") as resp:
            desk = await resp.json()
        assert desk["agent"]["id"] == "alice" and desk["pause_reasons"] == ["no-answer", "break"]
        assert desk["pop"]["linkedid"] == call.linkedid

        await site.hang_up(caller)
        await until(lambda: "PopEnded" in alice.kinds(), "the end")
        ended = alice.shown()
        assert ended is not None and ended["ended"]  # stays shown for wrap-up
        async with alice_http.post(f"{site.base}/api/pops/{call.linkedid}/dismiss", json={}) as resp:
            assert resp.status == 200
        await until(lambda: alice.shown() is None, "the dismissal")
        assert [k for k in bob.kinds() if k.startswith("Pop")] == []
        await alice.ws.close()
        await bob.ws.close()


async def test_a_login_that_is_no_agent_gets_no_desktop_socket(make_site: Any) -> None:  # noqa: F811
    site = await make_site()
    supervisor = bearer(site.ctid.context.engine, "sue", Role.SUPERVISOR)
    async with aiohttp.ClientSession(headers=supervisor) as http:
        async with http.get(f"{site.base}/ws/agent") as resp:
            assert resp.status == 403
        async with http.get(f"{site.base}/api/desktop") as resp:
            assert resp.status == 403
    async with aiohttp.ClientSession() as http, http.get(f"{site.base}/ws/agent") as resp:
        assert resp.status == 401
