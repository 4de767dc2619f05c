"""The desktop against a whole ctid and pbxsim: a ring pops on the ringing agent's socket before the answer,
with the customer's open complaint, and nowhere else; a reconnect gets it back; hang-up ends it."""

from __future__ import annotations

from typing import Any

import aiohttp

from ctid.auth import Role
from ctid.state import domain as d
from screenpop.component import ScreenpopComponent
from tests.auth_rig import bearer
from tests.daemon_rig import until
from tests.routing.test_service_pbxsim import AGENTS, make_site, ready_in_order  # noqa: F401  (fixture)
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
        assert desk["pop"]["linkedid"] == call.linkedid and desk["handled_today"] == 0

        await site.hang_up(caller)
        await until(lambda: "PopEnded" in alice.kinds(), "the end")
        ended = alice.shown()
        assert ended is not None and ended["ended"]  # stays shown for wrap-up
        async with alice_http.get(f"{site.base}/api/desktop") as resp:
            assert (await resp.json())["handled_today"] == 1  # the wallboard's count, for her desktop
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


async def test_a_blind_transfer_pops_for_the_receiver_with_the_note_and_the_crm_link(make_site: Any) -> None:  # noqa: F811
    site = await make_site()
    engine = site.ctid.context.engine
    crm = "https://crm.example/find?phone={caller}&id={customer}&call={call}"
    routing = site.routing_file.read_text()
    site.routing_file.write_text(routing.replace('"200":\n', f'"200":\n    crm_url: "{crm}"\n', 1))
    async with (
        aiohttp.ClientSession(headers=site.login) as admin,
        admin.post(f"{site.base}/api/routing/reload") as resp,
    ):
        assert resp.status == 200, await resp.text()
    alice_login = bearer(engine, "alice-login", Role.AGENT, "alice")
    carol_login = bearer(engine, "carol-login", Role.AGENT, "carol")
    async with (
        aiohttp.ClientSession(headers=alice_login) as alice_http,
        aiohttp.ClientSession(headers=carol_login) as carol_http,
    ):
        alice = Desktop(await alice_http.ws_connect(f"{site.base}/ws/agent"), site.world).start()
        carol = Desktop(await carol_http.ws_connect(f"{site.base}/ws/agent"), site.world).start()
        await ready_in_order(site, "alice", "carol")
        caller = await site.call("4000", "13900000001")
        await site.run(3)
        assert await site.agent_of(caller) == "PJSIP/1001"
        shown = alice.shown()
        assert shown is not None and shown["crm_url"] == ""  # sales has no CRM link
        linkedid = shown["linkedid"]
        note_url = f"{site.base}/api/pops/{linkedid}/transfer-note"
        async with alice_http.post(note_url, json={"text": "asked about <b>refunds</b>"}) as resp:
            assert resp.status == 200
        agent_channel = next(c.name for c in site.server.channels() if c.name.startswith("PJSIP/1001-"))
        reply = await site.server.phone_action(
            "BlindTransfer", Channel=agent_channel, Context="ctid-transfer", Exten="200"
        )
        assert reply["Response"] == "Success"
        await site.run(4)
        assert await site.agent_of(caller) == "PJSIP/1003"
        received = carol.shown()
        assert received is not None and received["linkedid"] == linkedid
        assert received["note"] == {"by": "Alice", "text": "asked about <b>refunds</b>"}
        assert received["crm_url"] == (f"https://crm.example/find?phone=13900000001&id=gold&call={linkedid}")
        assert received["data"]["customer"]["name"] == "Gold Ltd"
        before = alice.shown()
        assert before is not None and before["ended"] and before["linkedid"] == linkedid  # her wrap-up

        second = await site.call("4001", "13900000003")  # queue 200: carol's next call, never alice's pop
        await site.run(1)
        assert [m["pop"]["caller_num"] for _, m in alice.pops() if m["kind"] == "PopOpened"] == [
            "13900000001"
        ]
        await site.hang_up(caller)
        await site.hang_up(second)
        await alice.ws.close()
        await carol.ws.close()


async def test_a_failing_lookup_still_pops_what_is_known(make_site: Any) -> None:  # noqa: F811
    site = await make_site()

    def broken(engine: Any, customer: str, caller: str) -> dict[str, Any]:
        raise RuntimeError("database gone")

    site.ctid.component(ScreenpopComponent).load = broken
    login = bearer(site.ctid.context.engine, "alice-login", Role.AGENT, "alice")
    async with aiohttp.ClientSession(headers=login) as http:
        alice = Desktop(await http.ws_connect(f"{site.base}/ws/agent"), site.world).start()
        await ready_in_order(site, "alice")
        caller = await site.call("4000", "13900000003")
        await site.run(3)
        shown = alice.shown()
        assert shown is not None and shown["caller_num"] == "13900000003" and shown["customer"] == "plain"
        assert shown["data"] == {"customer": None, "found_by": "", "open_cases": [], "failed": True}
        await site.hang_up(caller)
        await alice.ws.close()
