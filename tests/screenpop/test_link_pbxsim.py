"""Written back, against a whole ctid and pbxsim: the agent links an unknown caller to a customer (Asterisk's
channel gets CTID_CUSTOMER, the pop shows the customer, the call is theirs in customer_calls), each write to
the customer refreshes the pop at once, and the desktop offers routing.yaml's dispositions."""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.orm import Session

from ctid.auth import Role
from ctid.customers.component import CustomersComponent
from ctid.customers.tables import CustomerCall
from ctid.dialplan import CUSTOMER_VAR
from tests.auth_rig import bearer
from tests.daemon_rig import until
from tests.routing.test_service_pbxsim import make_site  # noqa: F401  (fixture)
from tests.screenpop.rig import Desktop

UNKNOWN = "13900000077"


def customer_of(shown: dict[str, Any] | None) -> str:
    data = (shown or {}).get("data") or {}
    return str((data.get("customer") or {}).get("id", ""))


async def test_an_unknown_caller_linked_to_a_customer_is_theirs_everywhere(make_site: Any) -> None:  # noqa: F811
    site = await make_site()
    engine = site.ctid.context.engine
    site.routing_file.write_text(site.routing_file.read_text() + "dispositions: [resolved, no-sale]\n")
    alice_login = bearer(engine, "alice-login", Role.AGENT, "alice")
    bob_login = bearer(engine, "bob-login", Role.AGENT, "bob")
    async with (
        aiohttp.ClientSession(headers=site.login) as admin,
        aiohttp.ClientSession(headers=alice_login) as alice_http,
        aiohttp.ClientSession(headers=bob_login) as bob_http,
    ):
        async with admin.post(f"{site.base}/api/routing/reload") as resp:
            assert resp.status == 200
        alice = Desktop(await alice_http.ws_connect(f"{site.base}/ws/agent"), site.world).start()
        await until(lambda: alice.kinds() == ["AgentState"], "the snapshot")
        async with alice_http.get(f"{site.base}/api/desktop") as resp:
            assert (await resp.json())["dispositions"] == ["resolved", "no-sale"]
        async with alice_http.get(f"{site.base}/api/customers", params={"name": "Gold"}) as resp:
            assert (await resp.json())["customers"] == []  # no call with an unknown caller: no search
        assert await site.set_state("alice", "ready") == 200
        await site.run(1)
        caller = await site.call("4000", UNKNOWN)
        await site.run(4)
        shown = alice.shown()
        assert shown is not None and shown["answered"] and shown["data"]["customer"] is None
        linkedid = shown["linkedid"]

        async with alice_http.get(f"{site.base}/api/customers", params={"name": "Gold"}) as resp:
            assert [c["id"] for c in (await resp.json())["customers"]] == ["gold"]
        async with alice_http.get(f"{site.base}/api/customers/gold") as resp:
            assert resp.status == 403  # found, not yet hers to read
        link = f"{site.base}/api/pops/{linkedid}/customer"
        async with bob_http.post(link, json={"customer": "gold"}) as resp:
            assert resp.status == 404  # not bob's call
        async with alice_http.post(link, json={"customer": "nobody"}) as resp:
            assert resp.status == 404
        async with alice_http.post(link, json={"customer": 7}) as resp:
            assert resp.status == 400
        async with alice_http.post(link, json={"customer": "gold"}) as resp:
            assert resp.status == 200

        async with alice_http.post(link, json={"customer": "plain"}) as resp:
            assert resp.status == 409  # linked once: the caller is known now
        channel = next(c for c in site.world.channels.values() if c.name == caller)
        assert channel.variables[CUSTOMER_VAR] == "gold"  # Asterisk's records agree
        await until(lambda: customer_of(alice.shown()) == "gold", "the linked customer's pop")
        linked = alice.shown()
        assert linked is not None and linked["identified_by"] == "linked-by-agent"
        async with alice_http.get(f"{site.base}/api/customers/gold") as resp:
            assert resp.status == 200  # on her call now

        updates = len(alice.pops())
        note = {"text": "Caller from a new number", "call": linkedid}
        async with alice_http.post(f"{site.base}/api/customers/gold/notes", json=note) as resp:
            assert resp.status == 201
        await until(lambda: len(alice.pops()) > updates, "the pop's refresh")
        (kind, refreshed) = alice.pops()[-1][1]["kind"], alice.shown()
        assert kind == "PopUpdated" and refreshed is not None
        texts = [n["text"] for c in refreshed["data"]["customer"]["calls"] for n in c["notes"]]
        texts += [n["text"] for n in refreshed["data"]["customer"]["notes"]]
        assert "Caller from a new number" in texts

        await site.hang_up(caller)
        async with alice_http.post(
            f"{site.base}/api/calls/{linkedid}/disposition", json={"code": "resolved"}
        ) as resp:
            assert resp.status == 201
        assert await site.ctid.component(CustomersComponent).writer.flush()
        with Session(engine) as session:
            rows = session.execute(
                select(CustomerCall.customer_id, CustomerCall.agent).where(CustomerCall.linkedid == linkedid)
            ).all()
        assert [tuple(r) for r in rows] == [("gold", "alice")]
        await alice.ws.close()
